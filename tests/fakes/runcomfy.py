"""A fake RunComfy model API on 127.0.0.1, faithful to the documented contract, with knobs for every failure.

The API needs `Authorization: Bearer <token>`. Outputs (the PNGs) are served without it under `/outputs/` of the
same origin, as a local fake or proxy must (downloads are refused anywhere else that is not public); their requests
are recorded as site "output", so tests can prove the token never reaches them. `separate_output_host=True` serves
them from another port instead. Jobs advance with time (queue, run, finish), computed lazily on each request:
thousands of jobs cost no background work. Money as RunComfy's own clients see it: `GET /v1/models/{model_id}`
answers `model_info` (the price), a finished job's result carries `cost` when asked with `include_cost=true`, and
`out_of_credit` makes submits and the price call answer 402.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from tests.fakes.runcomfy_contract import (
    DEFAULT_ERRORS,
    MODEL_PATH,
    error_body,
    json_body,
    make_png,
    now_text,
    validate,
)

__all__ = ["AUTO", "FakeRunComfy", "JobPlan", "make_png"]
ROUTES = ("submit", "status", "result", "cancel", "download", "model")
AUTO = "auto"
TERMINAL = ("completed", "cancelled", "failed")


@dataclass
class JobPlan:
    """How a job behaves; defaults for all jobs, or queued with `next_job` for the next submits."""

    queue_seconds: float = 0.0
    run_seconds: float = 0.0
    queue_position: int = 1  # counts down to 1 over queue_seconds
    images: int | None = None  # delivered images; None = as many as asked (never more)
    failure: str | None = None  # the job ends failed with this error
    failure_style: str = "failed"  # "failed": status failed; "completed": completed with an error and no images
    image_bytes: int = 2048
    manual: bool = False  # never advances with time: use start/complete/fail
    extra_urls: int = 0  # output URLs listed beyond the number asked (a misbehaving server)
    cost: Any = AUTO  # `cost` sent with include_cost=true: AUTO = images delivered x cost_per_image; None: left out


@dataclass
class FakeJob:
    request_id: str
    input: dict[str, Any]
    plan: JobPlan
    submitted_at: float
    created_at: str
    state: str = "in_queue"
    queue_position: int = 1
    started_at: float | None = None
    finished_at: float | None = None
    finished_at_text: str | None = None
    error: str | None = None
    image_urls: list[str] = field(default_factory=list)
    expired: bool = False


@dataclass
class RecordedRequest:
    site: str  # "api" or "output"
    method: str
    path: str
    query: str
    headers: CIMultiDict[str]
    json: Any
    time: float


@dataclass
class _Action:
    kind: str  # "error", "slow", "drop"
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class FakeRunComfy:
    """The fake service. Knobs are plain attributes; `jobs`, `requests` and `counts` are there to inspect."""

    def __init__(
        self,
        *,
        token: str = "test-runcomfy-token",
        plan: JobPlan | None = None,
        record: bool = True,
        separate_output_host: bool = False,
    ) -> None:
        self.token = token
        self.separate_output_host = separate_output_host
        self.planted: str | None = None  # added to every text field of every JSON answer (an echoed secret, say)
        self.output_bodies: dict[int, bytes] = {}  # image index -> what is served instead of its PNG
        self.output_redirects: list[str] = []  # the next output requests answer 302 to these URLs, one each
        self.drip: dict[int, float] = {}  # image index -> its bytes are sent one at a time, this many seconds apart
        self.plan = plan or JobPlan()
        self.record = record
        self.spellings: dict[str, str] = {}  # canonical status -> spelling sent, e.g. {"completed": "succeeded"}
        self.output_style = "images"  # "images" (list) or "image" (single URL)
        self.submit_status = 200
        self.validation_status = 422
        self.expire_after: float | None = None  # outputs answer 404 this long after the job finished
        self.chunked_downloads = False  # no Content-Length on outputs
        self.delays: dict[str, float] = {}  # route -> seconds added to every answer
        # GET /v1/models/{model_id}: the body sent for the Seedream model (replace or edit it to test bad prices).
        self.model_info: Any = {
            "model_id": MODEL_PATH,
            "base_price_usd": 0.03,
            "price_unit": "image",
            "pricing_note": "Billed per output image.",
        }
        self.cost_per_image = 0.03  # what a finished job costs, reported with include_cost=true
        self.out_of_credit = False  # submits and price calls answer 402 (insufficient balance) while set
        self.jobs: dict[str, FakeJob] = {}
        self.requests: list[RecordedRequest] = []
        self.counts: Counter[str] = Counter()
        self.clock = time.monotonic  # replaceable, to drive job timelines by hand
        self.base_url = self.output_url = ""  # known once started
        self._plans: deque[JobPlan] = deque()
        self._actions: dict[str, deque[_Action]] = {route: deque() for route in ROUTES}
        self._runners: list[web.AppRunner] = []
        self._api_site: Any = None

    async def start(self, rid: str | None = None) -> str:
        """Start both sites and return the API base URL; with `rid`, start that queued job running instead."""
        if rid is not None:
            self.start_job(rid)
            return rid
        api = web.Application(middlewares=[self._record("api"), self._authenticate])
        api.router.add_post("/v1/models/{model:.+}", self._submit)
        api.router.add_get("/v1/models/{model:.+}", self._model)
        api.router.add_get("/v1/requests/{rid}/status", functools.partial(self._job_route, "status", self._status_body))
        api.router.add_get("/v1/requests/{rid}/result", functools.partial(self._job_route, "result", self._result_body))
        api.router.add_post("/v1/requests/{rid}/cancel", functools.partial(self._job_route, "cancel", self._cancel_job))
        api.router.add_get("/outputs/{rid}/{index:\\d+}.png", self._output)
        self._api_site, self.base_url = await self._serve(api)
        self.output_url = self.base_url
        if self.separate_output_host:
            outputs = web.Application(middlewares=[self._record("output")])
            outputs.router.add_get("/outputs/{rid}/{index:\\d+}.png", self._output)
            _, self.output_url = await self._serve(outputs)
        return self.base_url

    async def _serve(self, app: web.Application) -> tuple[web.TCPSite, str]:
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.05)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runners.append(runner)
        return site, f"http://127.0.0.1:{runner.addresses[0][1]}"

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    async def __aenter__(self) -> FakeRunComfy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def pause_api(self) -> None:
        """Stop listening on the API port (connections are refused) until `resume_api`."""
        await self._api_site.stop()

    async def resume_api(self) -> None:
        port = int(self.base_url.rsplit(":", 1)[1])
        self._api_site = web.TCPSite(self._runners[0], "127.0.0.1", port, reuse_address=True)
        await self._api_site.start()

    def next_job(self, **changes: Any) -> None:
        """The next submitted job follows the default plan with these changes (calls queue up in order)."""
        self._plans.append(replace(self.plan, **changes))

    def fail_next(self, route: str, status: int, body: Any = None, *, times: int = 1, retry_after: Any = None) -> None:
        """The next `times` calls of `route` answer `status` with an error body (a submit then creates no job)."""
        if body is None:
            code, message = DEFAULT_ERRORS.get(status, (500001 if status >= 500 else None, "Error"))
            body = error_body(code, message)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self._queue(route, times, _Action("error", status=status, body=body, headers=headers))

    def slow_next(self, route: str, seconds: float, *, times: int = 1) -> None:
        """The next `times` answers of `route` come `seconds` late (a submit creates its job first)."""
        self._queue(route, times, _Action("slow", delay=seconds))

    def drop_next(self, route: str, *, times: int = 1) -> None:
        """The next `times` calls of `route` get their connection closed with no answer (after a submit's job)."""
        self._queue(route, times, _Action("drop"))

    def _queue(self, route: str, times: int, action: _Action) -> None:
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; one of {ROUTES}")
        self._actions[route].extend(action for _ in range(times))

    def start_job(self, rid: str) -> None:
        """A queued job starts running now (in manual mode it then runs until `complete` or `fail`)."""
        job = self._advance(self.jobs[rid])
        if job.state == "in_queue":
            job.state, job.started_at = "in_progress", self.clock()

    def complete(self, rid: str, images: int | None = None) -> None:
        job = self._advance(self.jobs[rid])
        if images is not None:
            job.plan = replace(job.plan, images=images)
        self._finish(job, failure=None)

    def fail(self, rid: str, error: str = "The model could not generate the images", style: str = "failed") -> None:
        job = self._advance(self.jobs[rid])
        job.plan = replace(job.plan, failure_style=style)
        self._finish(job, failure=error)

    def expire(self, rid: str) -> None:
        self.jobs[rid].expired = True

    @property
    def submits(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.site == "api" and r.method == "POST" and r.path.startswith("/v1/models/")]

    def requests_for(self, path_prefix: str, site: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.startswith(path_prefix) and (site is None or r.site == site)]

    def state_of(self, rid: str) -> str:
        return self._advance(self.jobs[rid]).state

    def _advance(self, job: FakeJob) -> FakeJob:
        if job.plan.manual or job.state in TERMINAL:
            return job
        now = self.clock()
        if job.state == "in_queue":
            waited = now - job.submitted_at
            if waited < job.plan.queue_seconds:
                start = job.plan.queue_position
                job.queue_position = max(1, start - int(waited * start / job.plan.queue_seconds))
                return job
            job.state, job.started_at = "in_progress", job.submitted_at + job.plan.queue_seconds
        if job.state == "in_progress" and job.started_at is not None and now >= job.started_at + job.plan.run_seconds:
            self._finish(job, failure=job.plan.failure)
        return job

    def _finish(self, job: FakeJob, failure: str | None) -> None:
        job.finished_at, job.finished_at_text = self.clock(), now_text()
        if failure is not None:
            job.state = "completed" if job.plan.failure_style == "completed" else "failed"
            job.error, job.image_urls = failure, []
            return
        requested = job.input.get("sequential_image_generation_options", 3)
        count = (requested if job.plan.images is None else min(job.plan.images, requested)) + job.plan.extra_urls
        job.state = "completed"
        job.image_urls = [f"{self.output_url}/outputs/{job.request_id}/{i}.png" for i in range(1, count + 1)]

    def _status_body(self, job: FakeJob) -> dict[str, Any]:
        body: dict[str, Any] = {"request_id": job.request_id, "status": self.spellings.get(job.state, job.state)}
        if job.state == "in_queue":
            body["queue_position"] = job.queue_position
        return body

    def _record(self, site: str) -> Any:
        @web.middleware
        async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
            if self.record:
                body, headers = await json_body(request), CIMultiDict(request.headers)
                where = "output" if request.path.startswith("/outputs/") else site
                record = RecordedRequest(
                    where, request.method, request.path, request.query_string, headers, body, self.clock()
                )
                self.requests.append(record)
            return await handler(request)

        return middleware

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith("/outputs/") and request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response(error_body(400004, "Invalid or expired API token"), status=401)
        return await handler(request)

    async def _answer(self, route: str, make: Any, request: web.Request, *, process_first: bool = False) -> Any:
        """Run `make()` (the normal answer) with the behaviour injected for `route` around it."""
        self.counts[route] += 1
        action = self._actions[route].popleft() if self._actions[route] else None
        delay = self.delays.get(route, 0.0) + (action.delay if action else 0.0)
        if action is not None and action.kind == "error":
            await asyncio.sleep(delay)
            if isinstance(action.body, bytes):  # sent as is, though labelled JSON: to test unreadable answers
                headers = {"Content-Type": "application/json", **action.headers}
                return web.Response(body=action.body, status=action.status, headers=headers)
            return self._json(action.body, status=action.status, headers=action.headers)
        answer = await make() if process_first else None
        if delay:
            await asyncio.sleep(delay)
        if action is not None and action.kind == "drop":
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError  # aiohttp then ends the exchange without writing an answer
        return answer if process_first else await make()

    def _no_credit(self) -> web.Response:
        return web.json_response(error_body(400002, "Insufficient balance. Add funds to continue."), status=402)

    async def _model(self, request: web.Request) -> web.StreamResponse:
        async def make() -> web.StreamResponse:
            if request.match_info["model"] != MODEL_PATH:
                return web.json_response(error_body(400001, "Unknown model id"), status=404)
            if self.out_of_credit:
                return self._no_credit()
            return self._json(self.model_info)

        return await self._answer("model", make, request)

    async def _submit(self, request: web.Request) -> web.StreamResponse:
        body = await json_body(request)

        async def make() -> web.StreamResponse:
            if request.match_info["model"] != MODEL_PATH:
                return web.json_response(error_body(400001, "Unknown model id"), status=400)
            if self.out_of_credit:
                return self._no_credit()
            problems = validate(body)
            if problems:
                detail = [{"loc": [p.split(":")[0]], "msg": p} for p in problems]
                message = "Invalid input: " + "; ".join(problems)
                return web.json_response({"error_message": message, "detail": detail}, status=self.validation_status)
            plan = self._plans.popleft() if self._plans else self.plan
            rid = str(uuid.uuid4())
            job = FakeJob(rid, body, plan, self.clock(), now_text(), queue_position=plan.queue_position)
            self.jobs[rid] = job
            answer = {"request_id": rid, "status": self.spellings.get("in_queue", "in_queue")}
            answer |= {
                f"{name}_url": f"{self.base_url}/v1/requests/{rid}/{name}" for name in ("status", "result", "cancel")
            }
            return self._json(answer, status=self.submit_status)

        return await self._answer("submit", make, request, process_first=True)

    async def _job_route(self, route: str, render: Any, request: web.Request) -> web.StreamResponse:
        async def make() -> web.StreamResponse:
            job = self.jobs.get(request.match_info["rid"])
            if job is None:
                return web.json_response(error_body(404001, "Request not found or expired"), status=404)
            if route == "result":
                return self._json(self._result_body(self._advance(job), request.query.get("include_cost") == "true"))
            return self._json(render(self._advance(job)))

        return await self._answer(route, make, request)

    def _result_body(self, job: FakeJob, include_cost: bool = False) -> dict[str, Any]:
        body = {**self._status_body(job), "created_at": job.created_at}
        if job.state in TERMINAL:
            body["finished_at"] = job.finished_at_text
            single = self.output_style == "image" and job.image_urls
            body["output"] = {"image": job.image_urls[0]} if single else {"images": list(job.image_urls)}
            if job.error is not None:
                body["error"] = job.error
            if include_cost and job.plan.cost is not None:
                auto = round(len(job.image_urls) * self.cost_per_image, 6)
                body["cost"] = auto if job.plan.cost == AUTO else job.plan.cost
        return body

    def _cancel_job(self, job: FakeJob) -> dict[str, Any]:
        if job.state == "in_queue":
            job.state, job.finished_at, job.finished_at_text = "cancelled", self.clock(), now_text()
        outcome = "cancelled" if job.state == "cancelled" else "not_cancellable"
        return {"request_id": job.request_id, "status": self.spellings.get(job.state, job.state), "outcome": outcome}

    def _json(self, body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        if self.planted is not None and isinstance(body, dict):
            fields = ("error", "error_message", "message", "detail")
            body = body | {name: f"{body.get(name) or ''} {self.planted}".strip() for name in fields}
        return web.json_response(body, status=status, headers=headers)

    async def _output(self, request: web.Request) -> web.StreamResponse:
        async def make() -> web.StreamResponse:
            job = self._advance(known) if (known := self.jobs.get(request.match_info["rid"])) else None
            index = int(request.match_info["index"])
            expired = job is None or job.expired or not 1 <= index <= len(job.image_urls)
            if job is not None and job.finished_at is not None and self.expire_after is not None:
                expired = expired or self.clock() - job.finished_at > self.expire_after
            if expired:
                return web.Response(status=404, text=f"Not Found {self.planted or ''}")
            if self.output_redirects:
                return web.Response(status=302, headers={"Location": self.output_redirects.pop(0)})
            data = self.output_bodies.get(index) or await asyncio.to_thread(make_png, job.plan.image_bytes, index)
            if index in self.drip:
                return await self._drip(request, data, self.drip[index])
            if not self.chunked_downloads:
                return web.Response(body=data, content_type="image/png")
            response = web.StreamResponse(headers={"Content-Type": "image/png"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(data)
            await response.write_eof()
            return response

        return await self._answer("download", make, request)

    async def _drip(self, request: web.Request, data: bytes, pause: float) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png", "Content-Length": str(len(data))})
        await response.prepare(request)
        for offset in range(len(data)):
            await response.write(data[offset : offset + 1])
            await asyncio.sleep(pause)
        await response.write_eof()
        return response
