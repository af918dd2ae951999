"""/quota: admins set the image limits of the server, its roles and its members, and see who uses what.

Every change answers with what was in force before and what is now, and is logged with the admin who made it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord import i18n, money_format, quota_format, server_language
from bot.discord.bot import Interaction, SeedreamBot
from bot.discord.i18n import Text, command, option, t
from bot.discord.quota_checks import (
    Refusal,
    checked_count,
    checked_dollars,
    checked_member,
    checked_period,
    checked_role,
    checked_target,
    override_of,
    role_ids,
)
from bot.discord.quota_format import NONE
from bot.discord.quota_messages import current_period
from bot.discord.tree import guild_of
from bot.domain import periods
from bot.domain.quota_policy import Override
from bot.engine.quotas import GuildQuota, Quotas

log = logging.getLogger(__name__)

MAX_IMAGES = 1_000_000
MAX_CONCURRENT = 100
PERIOD_CHOICES = [app_commands.Choice(name=period, value=period) for period in periods.PERIODS]
LANGUAGE_CHOICES = [
    app_commands.Choice(name=server_language.CHOICE_NAMES[value], value=value) for value in server_language.CHOICES
]
UNKNOWN_OUTCOMES_LISTED = 10
TOP_USERS = 10

ImageCount = app_commands.Range[int, 0, MAX_IMAGES]
Person = discord.Member | discord.User
Mentionable = discord.Member | discord.User | discord.Role


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class QuotaAdmin(commands.GroupCog, group_name="quota", group_description="Image quotas of this server (admins)"):
    def __init__(self, bot: SeedreamBot) -> None:
        self.bot = bot
        super().__init__()

    @property
    def quotas(self) -> Quotas:
        return self.bot.quotas

    @commands.Cog.listener()
    async def on_guild_role_delete(self, role: discord.Role) -> None:
        # A deleted role can no longer be picked in /quota remove, so its override goes with it.
        if await self.quotas.remove_role_override(role.guild.id, role.id):
            log.info("quota override of deleted role %s in guild %s removed", role.id, role.guild.id)

    async def _respond(self, interaction: Interaction, action: Awaitable[list[Text]]) -> None:
        """Answer privately, in the admin's language."""
        try:
            lines = await action
        except Refusal as exc:
            lines = [exc.text]
        text = quota_format.say(lines, i18n.language_of(interaction.locale))
        await interaction.response.send_message(text, ephemeral=True)

    def _log_change(self, interaction: Interaction, what: str, target: str, before: str, after: str) -> None:
        log.info(
            "quota change in guild %s by admin %s: %s of %s: %s -> %s",
            guild_of(interaction),
            interaction.user.id,
            what,
            target,
            before,
            after,
        )

    async def _member_limit_change(
        self, interaction: Interaction, member: discord.Member, images: int | None
    ) -> list[Text]:
        guild_id = guild_of(interaction)
        before = await self.quotas.effective_limit(guild_id, member.id, role_ids(member))
        await self.quotas.set_user_limit(guild_id, member.id, images)
        after = await self.quotas.effective_limit(guild_id, member.id, role_ids(member))
        before_text, after_text = quota_format.limit(before), quota_format.limit(after)
        self._log_change(interaction, "limit", f"user {member.id}", before_text, after_text)
        lines = [quota_format.change(t("Limit of {member}", member=member.mention), before_text, after_text)]
        if images == 0:
            lines.append(t("They can't generate images here until an admin changes it."))
        return lines

    async def _role_limit_change(self, interaction: Interaction, role: discord.Role, images: int | None) -> list[Text]:
        guild_id = guild_of(interaction)
        period = (await self.quotas.guild_settings(guild_id)).period
        before = override_of(await self.quotas.overrides(guild_id), "role", role.id)
        await self.quotas.set_role_limit(guild_id, role.id, images)
        after = Override("role", role.id, images)
        before_text, after_text = quota_format.override(before, period), quota_format.override(after, period)
        self._log_change(interaction, "limit", f"role {role.id}", before_text, after_text)
        return [
            quota_format.change(t("Limit of the role {role}", role=role.mention), before_text, after_text),
            t("A member gets the most generous limit of their roles; a member's own limit wins over roles."),
        ]

    # ---- changes ------------------------------------------------------------------------------

    @app_commands.command(name="set", description="Set a member's image limit per period (0 blocks them)")
    @app_commands.describe(user="The member", images="Images per period; 0 blocks the member")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def set_user(self, interaction: Interaction, user: Person, images: ImageCount) -> None:
        async def action() -> list[Text]:
            member = checked_member(interaction, user)
            count = checked_count("images", images, minimum=0, maximum=MAX_IMAGES)
            return await self._member_limit_change(interaction, member, count)

        await self._respond(interaction, action())

    @app_commands.command(name="role", description="Set a role's image limit per period")
    @app_commands.describe(role="The role", images="Images per period; members get their most generous role")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def set_role(self, interaction: Interaction, role: discord.Role, images: ImageCount) -> None:
        async def action() -> list[Text]:
            checked = checked_role(interaction, role)
            count = checked_count("images", images, minimum=0, maximum=MAX_IMAGES)
            return await self._role_limit_change(interaction, checked, count)

        await self._respond(interaction, action())

    @app_commands.command(name="default", description="Set the server's default limit, period and sets at a time")
    @app_commands.describe(
        images="Images per period for members without their own or a role's limit (default: unchanged)",
        period="How often quotas reset, calendar periods in UTC (default: unchanged)",
        concurrent="How many sets one member may have in progress at a time (default: unchanged)",
    )
    @app_commands.choices(period=PERIOD_CHOICES)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def set_default(
        self,
        interaction: Interaction,
        images: ImageCount | None = None,
        period: str | None = None,
        concurrent: app_commands.Range[int, 1, MAX_CONCURRENT] | None = None,
    ) -> None:
        async def action() -> list[Text]:
            if images is None and period is None and concurrent is None:
                raise Refusal(
                    t(
                        "Give `{images}`, `{period}` or `{concurrent}` (any of them): what is left out stays.",
                        images=option("images"),
                        period=option("period"),
                        concurrent=option("concurrent"),
                    )
                )
            count = None if images is None else checked_count("images", images, minimum=0, maximum=MAX_IMAGES)
            chosen_period = checked_period(period)
            if concurrent is not None:
                checked_count("concurrent", concurrent, minimum=1, maximum=MAX_CONCURRENT)
            before = await self.quotas.guild_settings(guild_of(interaction))
            after = await self.quotas.set_guild_defaults(
                guild_of(interaction), images=count, period=chosen_period, max_concurrent=concurrent
            )
            before_text, after_text = quota_format.defaults(before), quota_format.defaults(after)
            self._log_change(interaction, "default", "server", before_text, after_text)
            return [quota_format.change(t("Server default"), before_text, after_text)]

        await self._respond(interaction, action())

    @app_commands.command(name="unlimited", description="Let a member or a role generate without limit")
    @app_commands.describe(target="A member or a role")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def unlimited(self, interaction: Interaction, target: Mentionable) -> None:
        async def action() -> list[Text]:
            checked = checked_target(interaction, target)
            if isinstance(checked, discord.Role):
                return await self._role_limit_change(interaction, checked, None)
            return await self._member_limit_change(interaction, checked, None)

        await self._respond(interaction, action())

    @app_commands.command(name="remove", description="Remove a member's or a role's own limit")
    @app_commands.describe(target="A member or a role")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def remove(self, interaction: Interaction, target: Mentionable) -> None:
        async def action() -> list[Text]:
            checked = checked_target(interaction, target)
            guild_id = guild_of(interaction)
            guild = await self.quotas.guild_settings(guild_id)
            kind = "role" if isinstance(checked, discord.Role) else "user"
            before = override_of(await self.quotas.overrides(guild_id), kind, checked.id)
            if before is None:
                return [t("{target} has no limit of their own; nothing changed.", target=checked.mention)]
            if kind == "role":
                await self.quotas.remove_role_override(guild_id, checked.id)
            else:
                await self.quotas.remove_user_override(guild_id, checked.id)
            before_text = quota_format.override(before, guild.period)
            self._log_change(interaction, "override removed", f"{kind} {checked.id}", before_text, "none")
            lines = [quota_format.change(t("Own limit of {target}", target=checked.mention), before_text, NONE)]
            if isinstance(checked, discord.Member):
                now = await self.quotas.effective_limit(guild_id, checked.id, role_ids(checked))
                lines.append(t("Now in force for them: {limit}.", limit=quota_format.limit(now)))
            return lines

        await self._respond(interaction, action())

    @app_commands.command(name="reset", description="Forget a member's usage in the current period")
    @app_commands.describe(user="The member")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def reset(self, interaction: Interaction, user: Person) -> None:
        async def action() -> list[Text]:
            member = checked_member(interaction, user)
            guild_id = guild_of(interaction)
            before = await self.quotas.usage(guild_id, member.id, role_ids(member))
            await self.quotas.reset_usage(guild_id, member.id)
            after = await self.quotas.usage(guild_id, member.id, role_ids(member))
            before_text = t("{used} used, {reserved} reserved", used=before.used, reserved=before.reserved)
            after_text = t("{used} used, {reserved} reserved", used=after.used, reserved=after.reserved)
            self._log_change(interaction, "usage reset", f"user {member.id}", before_text, after_text)
            what = t("Usage of {member} {when}", member=member.mention, when=current_period(after.period))
            left = quota_format.images(after.remaining)
            return [
                quota_format.change(what, before_text, after_text),
                t("They have {images} left. The server budget still counts these images.", images=left),
            ]

        await self._respond(interaction, action())

    @app_commands.command(name="budget", description="Cap the whole server's images or dollars per period")
    @app_commands.describe(
        images="Images per period for the whole server; 0 pauses generation (default: unchanged)",
        dollars="US dollars per period for the whole server, like 25 or 7.50 (default: unchanged)",
        period="The budget's period (default: unchanged, or the server's quota period for a new budget)",
    )
    @app_commands.choices(period=PERIOD_CHOICES)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def budget(
        self,
        interaction: Interaction,
        images: ImageCount | None = None,
        period: str | None = None,
        dollars: app_commands.Range[str, 1, 20] | None = None,
    ) -> None:
        async def action() -> list[Text]:
            count = None if images is None else checked_count("images", images, minimum=0, maximum=MAX_IMAGES)
            usd = checked_dollars(dollars)
            chosen_period = checked_period(period)
            before = await self.quotas.guild_settings(guild_of(interaction))
            has_budget = before.budget_images is not None or before.budget_usd_micros is not None
            if count is None and usd is None:
                if chosen_period is None:
                    raise Refusal(
                        t(
                            "Give `{images}`, `{dollars}` or `{period}`. "
                            "To remove the budget, use `/{quota} {remove}`.",
                            images=option("images"),
                            dollars=option("dollars"),
                            period=option("period"),
                            quota=command("quota"),
                            remove=command("budget-remove"),
                        )
                    )
                if not has_budget:
                    raise Refusal(
                        t(
                            "This server has no budget yet: give `{images}` or `{dollars}` to set one.",
                            images=option("images"),
                            dollars=option("dollars"),
                        )
                    )
            count = before.budget_images if count is None else count
            usd = before.budget_usd_micros if usd is None else usd
            if chosen_period is None and has_budget and before.budget_period != before.period:
                chosen_period = before.budget_period  # a period of its own stays when only the caps change
            return await self._budget_change(interaction, before, count, chosen_period, usd)

        await self._respond(interaction, action())

    @app_commands.command(name="budget-remove", description="Remove the server's budget")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def budget_remove(self, interaction: Interaction) -> None:
        async def action() -> list[Text]:
            before = await self.quotas.guild_settings(guild_of(interaction))
            if before.budget_images is None and before.budget_usd_micros is None:
                return [t("This server has no budget; nothing changed.")]
            return await self._budget_change(interaction, before, None, None, None)

        await self._respond(interaction, action())

    async def _budget_change(
        self,
        interaction: Interaction,
        before: GuildQuota,
        images: int | None,
        period: str | None,
        usd_micros: int | None,
    ) -> list[Text]:
        after = await self.quotas.set_budget(guild_of(interaction), images, period, usd_micros=usd_micros)
        before_text, after_text = quota_format.budget(before), quota_format.budget(after)
        self._log_change(interaction, "budget", "server", before_text, after_text)
        changed = quota_format.change(t("Server budget"), before_text, after_text)
        if after.budget_images is None and after.budget_usd_micros is None:
            return [changed]
        when = current_period(after.budget_period or after.period)
        used = quota_format.images(await self.quotas.guild_usage(guild_of(interaction)))
        if after.budget_usd_micros is None:
            return [changed, t("{images} used or reserved {when}.", images=used, when=when)]
        spent, held = await self.quotas.guild_spend(guild_of(interaction))
        money = money_format.spent_and_held(spent, held)
        return [changed, t("{images} used or reserved {when}. {money} {when}.", images=used, money=money, when=when)]

    @app_commands.command(name="alerts", description="Choose the channel where the bot alerts this server's admins")
    @app_commands.describe(channel="The channel for budget, credit and unknown-outcome alerts (leave out: none)")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def alerts(self, interaction: Interaction, channel: discord.TextChannel | None = None) -> None:
        async def action() -> list[Text]:
            money = self.bot.money
            before = await money.alert_channel(guild_of(interaction))
            channel_id = None if channel is None else channel.id
            await money.set_alert_channel(guild_of(interaction), channel_id)
            before_text, after_text = money_format.channel(before), money_format.channel(channel_id)
            self._log_change(interaction, "alert channel", "server", before_text, after_text)
            changed = quota_format.change(t("Alert channel"), before_text, after_text)
            return [changed] if channel is None else [changed, money_format.ALERTS_EXPLAINED]

        await self._respond(interaction, action())

    @app_commands.command(name="language", description="Choose the language of the bot's public messages here")
    @app_commands.describe(language="The server's own language (Community settings), or one of the bot's")
    @app_commands.choices(language=LANGUAGE_CHOICES)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def language(self, interaction: Interaction, language: str) -> None:
        async def action() -> list[Text]:
            guild_id = guild_of(interaction)
            if language not in server_language.CHOICES:
                raise Refusal(t("Pick a language from the list."))
            languages = self.bot.languages
            before = server_language.describe(languages, guild_id)
            await languages.choose(guild_id, language)
            after = server_language.describe(languages, guild_id)
            self._log_change(interaction, "language", "server", before, after)
            return [quota_format.change(t("Language of the bot's public messages"), before, after)]

        await self._respond(interaction, action())

    # ---- reading ------------------------------------------------------------------------------

    @app_commands.command(name="show", description="Show the server's quota settings, or one member's quota")
    @app_commands.describe(user="A member (leave out for the whole server)")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def show(self, interaction: Interaction, user: Person | None = None) -> None:
        async def action() -> list[Text]:
            guild_id = guild_of(interaction)
            guild = await self.quotas.guild_settings(guild_id)
            since, _ = periods.period_bounds(guild.period, self.bot.storage.clock())
            prompt_filter = self.bot.jobs.prompt_filter
            if user is not None:
                member = checked_member(interaction, user)
                usage = await self.quotas.usage(guild_id, member.id, role_ids(member))
                blocked = await prompt_filter.blocked_count(guild_id, since=since, user_id=member.id)
                return quota_format.member_report(
                    member.mention, usage, max_concurrent=guild.max_concurrent, blocked_prompts=blocked
                )
            server = interaction.guild
            budget_start, _ = periods.period_bounds(guild.budget_period or guild.period, self.bot.storage.clock())
            spend = await self.bot.money.guild_spend(guild_id, budget_start)
            spenders = await self.bot.money.top_spenders(guild_id, since, TOP_USERS)
            return quota_format.server_report(
                guild,
                await self.quotas.overrides(guild_id),
                await self.quotas.top_users(guild_id, TOP_USERS),
                budget_used=await self.quotas.guild_usage(guild_id),
                blocked_prompts=await prompt_filter.blocked_count(guild_id, since=since),
                role_exists=lambda role_id: server is None or server.get_role(role_id) is not None,
                unknown_outcomes=[
                    (job.user_id, job.submitted_at or job.created_at)
                    for job in await self.bot.storage.unknown_outcome_jobs(guild_id, UNKNOWN_OUTCOMES_LISTED)
                ],
                spend_lines=money_format.spend_lines(spend, spenders, budget=guild),
                language=server_language.describe(self.bot.languages, guild_id),
            )

        await self._respond(interaction, action())


async def setup(bot: SeedreamBot) -> None:
    await bot.add_cog(QuotaAdmin(bot))
