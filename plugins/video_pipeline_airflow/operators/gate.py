"""An approval gate: a human-in-the-loop form in the Airflow UI that a Variable or REST can answer too.

While it waits, the task is deferred (no worker slot). The decision is written to the job's manifest before
the gate acts on it, so a retried or cleared gate replays the recorded decision instead of asking again
(``upsert_hitl_detail`` on a retry wipes the form's answer). Reject succeeds the gate and skips everything
downstream; redo regenerates only the listed segments and re-opens the gate. An answer that cannot be used
(whatever it holds) is refused with the reason logged and the gate re-opens its request, so a reviewer can
answer again; an answer that reaches the gate again after that is recognised and ignored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import SkipMixin
from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Context, Param, Variable
from airflow.sdk.exceptions import TaskDeferred

from video_pipeline.approval import (
    APPROVE,
    MAX_LISTED_SEGMENTS,
    MAX_NARRATION_LINE_CHARS,
    MAX_NOTE_CHARS,
    MAX_PROMPT_LINE_CHARS,
    MAX_REPLACEMENT_PROMPTS,
    OPTIONS,
    REJECT,
    REVIEW_PAGE,
    DecisionError,
    DecisionRequest,
    answer_via,
    check_picks,
    check_segments,
    parse_form_answer,
    variable_key,
)
from video_pipeline.costs import stage_estimates, takes_estimate
from video_pipeline.gate_form import build_preview, gate_body, gate_subject, inert, takes_line
from video_pipeline.generation import make_takes
from video_pipeline.handoff import hand_off
from video_pipeline.manifest import decisions_for, load_manifest, merge_segments, save_manifest
from video_pipeline.models import Decision, JobSpec, Manifest, SegmentStatus, Stage, VideoSegment, utcnow
from video_pipeline.narration import NotSpoken
from video_pipeline.progress import record_completion
from video_pipeline.providers import registry
from video_pipeline.reminders import schedule
from video_pipeline.storage import Storage
from video_pipeline.submissions import credits_spent
from video_pipeline.takes import apply_picks
from video_pipeline_airflow import metrics
from video_pipeline_airflow.compat import get_hitl_detail_content_detail, upsert_hitl_detail
from video_pipeline_airflow.hooks.storage import get_storage
from video_pipeline_airflow.notify import notify
from video_pipeline_airflow.operators.narration import respeak
from video_pipeline_airflow.operators.segment import (
    AnimateSegmentOperator,
    GenerateImageOperator,
    SegmentOperator,
)
from video_pipeline_airflow.preview_links import preview_url, review_url
from video_pipeline_airflow.settings import gate_poll_seconds
from video_pipeline_airflow.stages import end_run
from video_pipeline_airflow.triggers.gate import ApprovalGateTrigger
from video_pipeline_airflow.triggers.settle import settle_deadline

APPROVED_STATUS = {"images": SegmentStatus.IMAGE_APPROVED, "clips": SegmentStatus.VIDEO_APPROVED}
REDO_SEED_STEP = 100_003  # a redo without a new prompt gets a new seed: seed + round × step


def form_params() -> dict[str, Param]:
    """The review form's fields, as new Param objects with empty defaults.

    The bounds guide the UI; the gate checks every answer itself (REST takes any JSON as ``params_input``).
    "segments" has none: before the gate runs, Airflow validates the run's conf value of the same name (the
    job spec's segments, a list of objects) against this Param, and a bound would fail the gate task.
    """
    return {
        "segments": Param(
            None,
            type=["array", "null"],
            description=f"Redo only: the segment numbers to regenerate, one per line (at most "
            f"{MAX_LISTED_SEGMENTS}).",
            source="task",
        ),
        "prompts": Param(
            None,
            type=["array", "null"],
            items={"type": "string", "maxLength": MAX_PROMPT_LINE_CHARS},
            maxItems=MAX_REPLACEMENT_PROMPTS,
            description='Redo only, optional: a new prompt per segment, one "<number>: <new prompt>" per line '
            "(a segment redone without one gets a new seed; at the clips gate it replaces the motion prompt).",
            source="task",
        ),
        "narrations": Param(
            None,
            type=["array", "null"],
            items={"type": "string", "maxLength": MAX_NARRATION_LINE_CHARS},
            maxItems=MAX_REPLACEMENT_PROMPTS,
            description='Redo only, optional: a new narration per segment, one "<number>: <new narration>" per '
            "line (only that segment is spoken again; at the images gate its image stays unless also listed).",
            source="task",
        ),
        "picks": Param(
            None,
            type=["object", "null"],
            description="Approve or Redo, optional, for a job with takes: the take that goes forward per segment, "
            'e.g. {"3": 2} (segment 3, take 2); segments left out keep theirs (take 1 unless picked before). A '
            "redo of a segment replaces its takes (its pick is not used).",
            source="task",
        ),
        "note": Param(
            None,
            type=["string", "null"],
            maxLength=MAX_NOTE_CHARS,
            description=f"Optional note for the audit trail (at most {MAX_NOTE_CHARS} characters).",
            source="task",
        ),
        "source": Param(
            None,
            type=["string", "null"],
            maxLength=20,
            description=f'Set to "{REVIEW_PAGE}" by the review page; leave empty here.',
            source="task",
        ),
    }


class ApprovalGateOperator(HITLOperator, SkipMixin):
    """One approval gate of a job: opens a review request (the Required Action form), waits deferred on
    :class:`~video_pipeline_airflow.triggers.gate.ApprovalGateTrigger` for the form, REST or the decision
    Variable, and acts on the answer: approve returns the segments, reject skips everything downstream, redo
    regenerates the listed segments and opens the gate again.

    It replaces both ``execute`` and ``execute_complete`` of ``HITLOperator``: on Airflow 3.3 the parent's
    ``execute`` waits in ``awaiting_input`` with no trigger (nothing would poll the Variable) and writes the
    task's Params, which Airflow fills from the run's conf, into the form; the parent's ``execute_complete``
    raises on an unusable answer, where the gate refuses it and re-opens. It keeps the parent's form (subject,
    options, Param fields) and its link to the form.

    :param stage: which gate, ``"images"`` or ``"clips"``: the segments it shows and the status it approves.
    :param job: the job spec as a dict (templated: the validated spec from ``validate_job``).
    :param segments: the segments to review, as dicts (templated: the mapped stage's output, read in one
        request).
    :param hands_off: whether a mapped stage follows: the approved segments are then handed off in storage
        (:mod:`video_pipeline.handoff`) and the gate returns their numbers, so that each mapped task reads its
        own segment instead of all of them; otherwise it returns the approved segments as dicts.
    :param kwargs: passed to ``HITLOperator``/``BaseOperator`` (``task_id`` and the like); ``params`` is
        dropped: the DAG's trigger params are not the form's fields.
    """

    template_fields: Sequence[str] = ("job", "segments")
    inherits_from_skipmixin = True
    ui_color = "#fff4cc"

    def __init__(
        self, *, stage: Stage, job: Any, segments: Any, hands_off: bool = False, **kwargs: Any
    ) -> None:
        kwargs.pop("params", None)  # the DAG's trigger params are not form fields of the gate
        super().__init__(subject=f"Review {stage}", options=OPTIONS, params=form_params(), **kwargs)
        self.stage: Stage = stage
        self.job = job
        self.segments = segments
        self.hands_off = hands_off

    # -- waiting ---------------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        job = JobSpec.model_validate(self.job)
        storage = get_storage()
        manifest = self._manifest(storage, job)
        run_id = context["run_id"]
        if self.stage not in manifest.gates_opened_at:  # later rounds keep their redone segments
            # One request for the whole stage: iterating Airflow's lazy sequence of a mapped task's output
            # asks for each item on its own (N requests).
            outputs = (self.segments or [])[:]
            merge_segments(manifest, [VideoSegment.model_validate(s) for s in outputs])

        recorded = [d for d in decisions_for(manifest, run_id, self.stage) if d.decision != "redo"]
        if recorded:  # a retry or clear after the decision was taken: replay it, never ask again
            self.log.info("Replaying the recorded %s decision from the manifest", recorded[-1].decision)
            return self._act(context, storage, manifest, recorded[-1])
        if not job.gated(self.stage):
            decision = Decision(
                stage=self.stage,
                decision="approve",
                via="auto",
                by="approval mode",
                run_id=run_id,
                note=f"approval: {job.approval}",
            )
            manifest.decisions.append(decision)
            return self._act(context, storage, manifest, decision)

        if context["ti"].try_number > 1 and self.stage in manifest.gates_opened_at:
            # A retry of an open gate (e.g. Airflow lost the deferral hand-off): keep the request as it is,
            # since it may already hold the reviewer's answer, and wait on it again.
            self.log.info(
                "Retry of an open gate: waiting on the existing request (its answer, if any, is kept)"
            )
            return self._wait(context, job, manifest.gates_opened_at[self.stage])
        # A leftover decision (from a crashed or earlier run) must never answer this new round.
        Variable.delete(variable_key(job.job_id, self.stage))
        return self._open(context, storage, job, manifest, changed=[])

    def _open(
        self,
        context: Context,
        storage: Storage,
        job: JobSpec,
        manifest: Manifest,
        changed: list[int],
        note: str | None = None,
        notice: str | None = None,
    ) -> None:
        """Open (or re-open) the gate's request. ``note`` is the reviewer's (shown with the changes);
        ``notice`` is the pipeline's own word to the reviewer (a refused or failed redo)."""
        round_ = len(decisions_for(manifest, context["run_id"], self.stage)) + 1
        segments = manifest.segments
        preview = build_preview(storage, job, self.stage, segments, round_)
        key = variable_key(job.job_id, self.stage)
        review = self._review_link(context)
        self.subject = gate_subject(job, self.stage, round_)
        self.body = gate_body(
            job,
            self.stage,
            segments,
            preview,
            lambda k: preview_url(storage, k),
            variable_key=key,
            credits_spent=credits_spent(storage, job.job_id),
            next_stage_estimate=stage_estimates(job, segments)["clips"] if self.stage == "images" else 0.0,
            changed=changed,
            note=note,
            review_url=review,
        )
        if price := self.redo_price(storage, job, segments):
            self.body = f"{self.body}\n\n{price}"
        if notice:
            self.body = f"{self.body}\n\n**Notice:** {inert(notice)}"
        manifest.status = "awaiting_images" if self.stage == "images" else "awaiting_clips"
        manifest.gates_opened_at[self.stage] = utcnow()
        save_manifest(storage, manifest)
        upsert_hitl_detail(
            ti_id=context["task_instance"].id,
            options=self.options,
            subject=self.subject,
            body=self.body,
            defaults=self.defaults,
            multiple=self.multiple,
            params=self.form_request_params(),
            assigned_users=self.assigned_users,
        )
        self.log.info(
            "Gate open (round %d): answer in the UI (Required Action tab) or set the Variable %s",
            round_,
            key,
        )
        notify(
            self.subject,
            f"Review page: {review} — or the form: {self._form_link(context)} — or set the Variable {key}"
            + (f". {price}" if price else "")
            + (f" {takes}" if (takes := takes_line(job, self.stage)) else ""),
        )
        self._wait(context, job, manifest.gates_opened_at[self.stage])

    @staticmethod
    def form_request_params() -> dict[str, dict[str, Any]]:
        """The form's fields as the request stores them, always empty.

        Not ``self.serialized_params``: at run time Airflow writes each ``dag_run.conf`` value into the task's
        Param of the same name, so the job spec's ``segments`` (a list of prompts) would pre-fill the form's
        "segments" field, and the UI would send it back with every answer (seen in the browser test).
        """
        return {name: param.serialize() for name, param in form_params().items()}

    def _wait(self, context: Context, job: JobSpec, opened_at: datetime) -> None:
        key = variable_key(job.job_id, self.stage)
        timeout_option = APPROVE if job.on_gate_timeout == "approve" else REJECT
        reminders = schedule(job, self.stage, context["run_id"], opened_at, self._review_link(context))
        self.defer(
            trigger=ApprovalGateTrigger(
                ti_id=str(context["task_instance"].id),
                variable_key=key,
                timeout_at=opened_at + timedelta(seconds=job.gate_timeout),
                timeout_option=timeout_option,
                poll_interval=gate_poll_seconds(),
                settle_until=settle_deadline(),
                reminders=[r.to_json() for r in reminders],
            ),
            method_name="execute_complete",
        )

    # -- deciding --------------------------------------------------------------------------------------

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        job = JobSpec.model_validate(self.job)
        storage = get_storage()
        manifest = self._manifest(storage, job)
        run_id = context["run_id"]
        if self.stage in manifest.gates_opened_at and not self._answers_this_opening(context, event):
            # Seen on real Airflow: an answer the gate had already refused (and re-opened on) was delivered a
            # second time, a moment after the re-opening. The request no longer holds it: wait on.
            self.log.warning(
                "An answer to an earlier opening of this gate arrived again; ignored, still waiting"
            )
            return self._wait(context, job, manifest.gates_opened_at[self.stage])
        Variable.delete(variable_key(job.job_id, self.stage))  # consumed, or superseded by the form
        try:
            request = parse_form_answer(event.get("chosen_options"), _params_of(event))
            check_segments(request, [s.index for s in manifest.segments])
            check_picks(request, manifest.segments, self.stage)
        except DecisionError as exc:
            # Re-opening writes a fresh request (upsert wipes the answer), so a retry cannot replay this one.
            self.log.error("Unusable answer (%s); re-opening the gate", exc)
            return self._open(context, storage, job, manifest, changed=[])

        user = event.get("responded_by_user") or {}
        # The REST handler resumes a deferred gate itself, with an event that carries no "via": an answer
        # through Airflow's HITL API, from the form or from the review page (which says so in "source").
        via = answer_via(event.get("via", "ui"), event.get("params_input"))
        decision = Decision(
            stage=self.stage,
            decision=request.decision,
            segments=request.segments,
            prompts=request.prompts,
            narrations=request.narrations,
            picks=request.picks,
            note=request.note,
            by=user.get("name") or (via if via in ("timeout", "variable") else None),
            via=via,
            round=len(decisions_for(manifest, run_id, self.stage)) + 1,
            run_id=run_id,
            opened_at=manifest.gates_opened_at.get(self.stage),
        )
        manifest.decisions.append(decision)
        metrics.gate_answered(decision)
        self.log.info(
            "Decision: %s by %s via %s (round %d)%s",
            decision.decision,
            decision.by,
            decision.via,
            decision.round,
            f", segments {decision.segments}" if decision.segments else "",
        )
        notify(
            f"{job.job_id}: {self.stage} {decision.decision}",
            f"{decision.decision} by {decision.by} via {decision.via} (round {decision.round})"
            + (f", segments {decision.segments}" if decision.segments else "")
            + (f": {decision.note}" if decision.note else ""),
        )
        if decision.decision == "redo":
            return self._redo(context, storage, job, manifest, request, decision.round)
        return self._act(context, storage, manifest, decision)

    def _redo(
        self,
        context: Context,
        storage: Storage,
        job: JobSpec,
        manifest: Manifest,
        request: DecisionRequest,
        round_: int,
    ) -> None:
        redo_rounds = sum(
            1 for d in decisions_for(manifest, context["run_id"], self.stage) if d.decision == "redo"
        )
        if redo_rounds > job.max_redo_rounds:
            self.log.error("max_redo_rounds (%d) reached; approve or reject", job.max_redo_rounds)
            manifest.decisions.pop()
            return self._open(context, storage, job, manifest, changed=[])
        # A replacement prompt replaces what this stage generates from: the image's prompt at the images
        # gate, the clip's motion prompt at the clips gate (the image, and the prompt it was made from, stay).
        prompt_field = "prompt" if self.stage == "images" else "motion_prompt"
        clip_lengths = {s.index: s.duration_s for s in manifest.segments}
        try:
            respoken = respeak(context, storage, job, manifest.segments, request.narrations, self.task_id)
        # e.g. a paid voice refused it, or the budget: the segments keep their narration
        except NotSpoken as exc:
            manifest.decisions.pop()
            self.log.error("Redo refused: %s", exc)
            return self._open(context, storage, job, manifest, changed=[], notice=f"Redo refused: {exc}")
        merge_segments(manifest, respoken.values())
        wanted = []
        for index in request.segments:
            segment = next(s for s in manifest.segments if s.index == index)
            # A new narration alone is spoken again and the stage's output stays, unless a new prompt came with
            # it, or (at the clips gate) the segment's new length needs another clip length.
            regenerate = index in request.prompts or (
                self.stage == "clips" and segment.duration_s != clip_lengths[index]
            )
            if index in respoken and not regenerate:
                continue
            prompt = request.prompts.get(index)
            update = {prompt_field: prompt} if prompt else {"seed": segment.seed + round_ * REDO_SEED_STEP}
            wanted.append(segment.model_copy(update=update))
        if not wanted:
            self._apply_picks(manifest, request)
            return self._open(context, storage, job, manifest, changed=request.segments, note=request.note)
        choice = job.choice(self.stage)
        if registry.is_remote(choice.provider):
            return self._redo_remote(context, storage, job, manifest, request, round_, wanted)
        self._apply_picks(manifest, request)
        provider = registry.local(choice.provider)
        redone = []
        for segment in wanted:
            redone.append(make_takes(storage, job, segment, provider, self.stage))
            self.log.info("Regenerated %s", redone[-1].label)
            self._progress(context, job, redone[-1].index, len(wanted), round_)
        merge_segments(manifest, redone)
        return self._open(context, storage, job, manifest, changed=request.segments, note=request.note)

    def _apply_picks(self, manifest: Manifest, request: DecisionRequest) -> None:
        """The reviewer's picks (checked: ``check_picks``) on the segments the answer does not redo: their
        takes stay, the picked one goes forward."""
        if request.picks:
            skip = request.segments if request.decision == "redo" else []
            manifest.segments = apply_picks(manifest.segments, self.stage, request.picks, skip=skip)

    def _progress(self, context: Context, job: JobSpec, index: int, total: int, round_: int) -> None:
        for event in record_completion(
            get_storage(),
            job.job_id,
            self.stage,
            index,
            total,
            run_id=context["run_id"],
            round_=round_ + 1,  # the gate round that shows these segments
        ):
            self.log.info("Progress: %s", event.message)

    # -- redo on a paid provider -------------------------------------------------------------------------

    def redo_price(self, storage: Storage, job: JobSpec, segments: list[VideoSegment]) -> str | None:
        """What a redo costs, shown with the form and in the notification before anyone asks for one (``None``
        for a free provider)."""
        prices = {s.index: takes_estimate(job, s, self.stage) for s in segments}
        if not any(prices.values()):
            return None
        low, high = min(prices.values()), max(prices.values())
        each = f"~{low:g}" if low == high else f"~{low:g}–{high:g}"
        takes = job.stage_takes(self.stage)
        each += f" ({takes} takes)" if takes > 1 else ""
        left = (
            f"; the budget has {job.budget_credits - credits_spent(storage, job.job_id):g} of "
            f"{job.budget_credits} credits left"
            if job.budget_credits is not None
            else ""
        )
        return (
            f"**Redo cost:** {each} credits per segment, checked against the budget before it is spent{left}."
        )

    def redo_cost(self, job: JobSpec, segments: list[VideoSegment]) -> float:
        """Credits regenerating ``segments`` (every take of each) at this gate costs on the stage's provider (a
        cache hit: less)."""
        return sum(takes_estimate(job, s, self.stage) for s in segments)

    def _generator(self, job: JobSpec, segment: VideoSegment, total: int, round_: int) -> SegmentOperator:
        """The stage's segment operator as the redo's engine: the same records, reservations, stop checks and
        resume rules as the mapped tasks, so a redo is never paid twice either."""
        cls = GenerateImageOperator if self.stage == "images" else AnimateSegmentOperator
        generator = cls(
            task_id=self.task_id,
            job=job.settings().model_dump(mode="json"),
            segment=segment.model_dump(mode="json"),
            total=total,
        )
        generator.progress_round = round_ + 1  # the gate round that shows these segments
        generator.finish_in_trigger = False  # the trigger's event comes back to the gate, which goes on
        return generator

    def _redo_remote(
        self,
        context: Context,
        storage: Storage,
        job: JobSpec,
        manifest: Manifest,
        request: DecisionRequest,
        round_: int,
        wanted: list[VideoSegment],
    ) -> None:
        """Submit the listed segments (after checking their cost against what the budget has left), then wait
        for each provider task in turn (deferred), and re-open the gate with the results."""
        cost = self.redo_cost(job, wanted)
        spent = credits_spent(storage, job.job_id)
        if job.budget_credits is not None and spent + cost > job.budget_credits:
            manifest.decisions.pop()
            note = (
                f"Redo refused: regenerating segments {request.segments} costs ~{cost:g} credits and the budget "
                f"has {job.budget_credits - spent:g} left; approve, reject, or redo fewer segments."
            )
            self.log.error(note)
            return self._open(context, storage, job, manifest, changed=[], notice=note)
        choice = job.choice(self.stage)
        self.log.info(
            "Redo of segments %s: ~%g credits on %s %s", request.segments, cost, choice.provider, choice.model
        )
        self._apply_picks(manifest, request)
        save_manifest(storage, manifest)  # the decision (and picks), before anything is paid for
        done: list[dict[str, Any]] = []
        pending: list[dict[str, Any]] = []
        failed: list[str] = []
        for segment in wanted:
            try:  # a cache hit returns at once; a submission defers
                done.append(self._generator(job, segment, len(wanted), round_).execute(context))
            except TaskDeferred:
                pending.append({"segment": segment.model_dump(mode="json")})
            except Exception as exc:  # refused, over budget, stopped: the segment keeps its output
                failed.append(f"{segment.label}: redo not submitted: {exc}")
                self.log.error("Redo of %s not submitted: %s", segment.label, exc)
        state = {
            "round": round_,
            "changed": request.segments,
            "note": request.note,
            "done": done,
            "failed": failed,
        }
        return self._await_redo(context, job, pending, state)

    def _await_redo(
        self, context: Context, job: JobSpec, pending: list[dict[str, Any]], state: dict[str, Any]
    ) -> None:
        storage = get_storage()
        if not pending:
            manifest = self._manifest(storage, job)
            merge_segments(manifest, [VideoSegment.model_validate(s) for s in state["done"]])
            notice = "; ".join(state["failed"]) or None
            return self._open(
                context, storage, job, manifest, changed=state["changed"], note=state["note"], notice=notice
            )
        head = pending[0]
        segment = VideoSegment.model_validate(head["segment"])
        try:
            # Resumes the recorded provider task (never a second submission), or finds the output made
            # meanwhile (a cache hit: e.g. the salvage sweep fetched it).
            made = self._generator(job, segment, len(state["changed"]), state["round"]).execute(context)
        except TaskDeferred as deferred:
            self.defer(
                trigger=deferred.trigger,
                method_name="execute_redo_complete",
                kwargs={"pending": pending, "state": state, "deferral": deferred.kwargs},
            )
        except Exception as exc:
            state["failed"].append(f"{segment.label}: redo failed: {exc}")
        else:
            state["done"].append(made)
        return self._await_redo(context, job, pending[1:], state)

    def execute_redo_complete(
        self,
        context: Context,
        event: dict[str, Any],
        pending: list[dict[str, Any]],
        state: dict[str, Any],
        deferral: dict[str, Any],
    ) -> None:
        """One redone segment's provider task ended: store its output (or note its failure), then wait for the
        next one, or re-open the gate when all are back."""
        job = JobSpec.model_validate(self.job)
        segment = VideoSegment.model_validate(pending[0]["segment"])
        generator = self._generator(job, segment, len(state["changed"]), state["round"])
        try:
            result = generator.execute_complete(context, event, **deferral)
        except TaskDeferred as deferred:  # the segment's next take is submitted: wait for it, then go on
            self.defer(
                trigger=deferred.trigger,
                method_name="execute_redo_complete",
                kwargs={"pending": pending, "state": state, "deferral": deferred.kwargs},
            )
        except Exception as exc:  # failed at the provider: the segment keeps its earlier output
            state["failed"].append(f"{segment.label}: redo failed: {exc}")
            self.log.error("Redo of %s failed: %s", segment.label, exc)
        else:
            state["done"].append(result)
            self.log.info("Regenerated %s", segment.label)
        return self._await_redo(context, job, pending[1:], state)

    @staticmethod
    def _answers_this_opening(context: Context, event: dict[str, Any]) -> bool:
        """Whether the gate's request holds the answer this event carries.

        Every opening wipes the request's answer (``upsert_hitl_detail``), and every answer is in the request
        before it reaches the gate (the form's by Airflow, a Variable's or a timeout's by the trigger). An event
        whose answer the request does not hold answered an earlier opening; if the request holds another
        answer, the trigger brings that one once the gate waits again.
        """
        try:
            detail = get_hitl_detail_content_detail(ti_id=context["task_instance"].id)
        except Exception:  # no request to compare with (a gate that died before writing one): take the event
            return True
        if not detail.response_received:
            return False
        try:
            held = json.dumps([list(detail.chosen_options or []), detail.params_input or {}], sort_keys=True)
            carried = json.dumps(
                [event.get("chosen_options") or [], event.get("params_input") or {}], sort_keys=True
            )
        except (TypeError, ValueError, RecursionError):  # not comparable as JSON: the answer check refuses it
            return True
        return held == carried

    def _act(self, context: Context, storage: Storage, manifest: Manifest, decision: Decision) -> Any:
        if decision.decision == "approve":
            # Picks are absolute (segment → take), so a replayed decision applies them again to the same end.
            manifest.segments = apply_picks(manifest.segments, self.stage, decision.picks)
            for segment in manifest.segments:
                segment.status = APPROVED_STATUS[self.stage]
            manifest.status = "running"
            save_manifest(storage, manifest)
            if self.hands_off:
                return hand_off(
                    storage, manifest.job.job_id, context["run_id"], self.task_id, manifest.segments
                )
            return [s.model_dump(mode="json") for s in manifest.segments]

        for segment in manifest.segments:
            segment.status = SegmentStatus.REJECTED
        manifest.status = "rejected"
        save_manifest(storage, manifest)
        end_run(manifest.job.job_id, context["run_id"], "rejected", f"rejected at the {self.stage} gate")
        downstream = [t for t in context["task"].get_flat_relatives(upstream=False) if not t.is_teardown]
        self.log.info("Rejected: skipping %d downstream tasks", len(downstream))
        self.skip(ti=context["ti"], tasks=downstream)
        return None

    def _review_link(self, context: Context) -> str:
        map_index = getattr(
            context.get("task_instance"), "map_index", None
        )  # a gate is not mapped in our DAG
        return review_url(
            self.dag_id, context["run_id"], self.task_id, -1 if map_index is None else map_index
        )

    def _form_link(self, context: Context) -> str:
        try:
            return self.generate_link_to_ui_from_context(context=context)
        except ValueError:  # [api] base_url is not configured
            return "the gate's Required Action tab in the Airflow UI"

    @staticmethod
    def _manifest(storage: Storage, job: JobSpec) -> Manifest:
        manifest = load_manifest(storage, job.job_id)
        if manifest is None:
            raise RuntimeError(f"manifest for job {job.job_id!r} is missing from {storage.url}")
        return manifest


def _params_of(event: dict[str, Any]) -> Any:
    """The answer's form fields. A trigger started before replacement prompts travelled in the form fields
    sent them beside them as ``{"<n>": "<prompt>"}``; those become form lines, checked like any other."""
    params = event.get("params_input")
    legacy = event.get("prompts")
    if isinstance(params, dict) and isinstance(legacy, dict) and legacy and params.get("prompts") is None:
        lines = [f"{n}: {p}" if isinstance(n, str) and isinstance(p, str) else p for n, p in legacy.items()]
        return {**params, "prompts": lines}
    return params
