"""``tune.executor: population``: K trials of a study trained together as one vectorised pass.

The executor asks Optuna for trials (``study.ask()``, parameters suggested by the same
``suggest`` the local objective uses) until K are running, and trains them as
:class:`tunelab.train.Population`\\ s -- parameters stacked along a leading dimension, one
batched forward/backward and one vectorised optimiser step per batch:

- **Grouping.** Trials with equal :func:`tunelab.train.group_key` (same builder and parameter
  shapes, optimiser kind, batch size, loss, monitor, device) share one population; members
  differ in every shape-keeping value (lr, weight decay, momentum/betas, dropout, label
  smoothing, L1, clipping, schedule, epochs, init seed). A study that also searches shapes trains
  one population per shape, at most K members running in all. A study that searches the
  optimiser (``train.optimizer`` or ``train.nesterov`` in the space) does not split on it: its
  populations are ``optimizer="mixed"``, where each member keeps its own optimiser (one update
  formula with per-member coefficients, exact per kind; ``mix_optimizers`` turns it off).
  Each population is K slots wide but an epoch trains only its slots up to the highest running
  one (``Population`` trains the prefix ``[:hi]``), and a new trial takes the lowest free slot,
  so a group's cost follows its live members: a group of one trains as a population of one.
  Such a group stays on the population path rather than the sequential one: it keeps
  per-member reporting and refill the same, and a one-member population costs about what a
  sequential trial does (BENCHMARKS.md, "Tuning: population training").
- **Packing widths.** A study that searches an MLP's width makes groups of one or two trials
  (BENCHMARKS.md: most of the search-efficiency spaces' groups), and every group pays a
  population step's fixed cost (dispatch of its ops: about 0.25 ms a step on this CPU, one
  thread). So a trial whose own group holds no running member may join a running group of a
  *wider* MLP with otherwise the same key (same depth, activation, batch size, optimiser...):
  ``Population`` pads it to the group's width with exact zeros (its padded units compute and
  receive nothing, so it trains exactly as at its own width) and saves its own width's model.
  Padding costs compute, so it joins only where that measured faster (:func:`packing_pays`:
  the padded parameters' cost per step, ``(P(W) - P(w)) * (3.6 + 0.087 * batch)`` ns, below
  one step's fixed cost, 0.25 ms; ``bench/population.py --packing``). The other way round, a
  trial that starts a group of its own (or joins one of its own width) *widens* it: the
  running members of groups of narrower MLPs with the same key move into it
  (``Population.adopt_member``, exact) where their padding, summed, pays for the population
  they leave. Anything that does not pack (a CNN, batch norm, a different depth or batch size,
  a different optimiser where the study does not search it, padding that does not pay) keeps
  its own group.
- **Scheduling.** Each turn of the loop trains one epoch of the group that holds the oldest
  running trial (lowest trial number), then refills. Trials thus end in about the order they
  were asked, as with one trial at a time, and the trials of the same group ride along in the
  same vectorised pass; with one epoch of every group per turn (``schedule = "round_robin"``),
  a study with many groups of one or two trials spread its epochs over all K running trials
  and reached its first good epoch later (BENCHMARKS.md, "Tuning: population training").
  After each epoch the group is compacted (``Population.move_member``: the highest running
  members take free lower slots), so its trained prefix stays as short as its live members.
- **Per-member reporting.** After each epoch every member's ``tune.metric`` is reported to its
  own trial (``trial.report(value, epoch)``) and the study's pruner decides per member, with the
  same final-rung rule as the local :class:`~tunelab.tune._callbacks.PruningCallback`.
- **Masking.** A member whose loss turns NaN/inf stops updating on the device at that step; the
  others are untouched. The sick rule is :class:`tunelab.train.SickTrialPolicy` (its
  ``judge_epoch``); a sick member is recorded as the local objective records it (PRUNED, with
  ``reason``, ``findings`` and ``sick: True``).
- **Refill.** A member that finishes, is pruned or falls sick leaves, and a new trial from the
  sampler takes its slot at once while the budget lasts, so the sampler keeps learning.
- **Artefacts.** Each trial writes ``trials/<n>/`` as a sequential trial does: ``config.yaml``,
  ``metrics.jsonl`` (one row per epoch), ``best/`` (its best epoch by ``train.monitor``, a normal
  tunelab model) and ``result.json`` (no test-split evaluation, no TensorBoard, no checkpoint:
  a population is not resumable mid-trial; an interrupted study re-queues its running trials).
- **Fallback.** A trial whose model or settings :func:`tunelab.train.supports` refuses (LSTM,
  ``accumulate_steps > 1``, AMP, augmentation, class weights, a ``model.checkpoint``, ...)
  runs through the :class:`TrainingObjective` itself, one at a time, with one notice per study
  (``population: <reason>; these trials run one at a time``). Cross-validation
  (``tune.cv.folds``) and ``diagnose.enabled`` (the doctor watches one fit) send the whole
  study to the local executor, with the same kind of notice.

``--workers N``: this process runs its own population; the helper processes build their share
through ``_config_study.work``, which today calls the local loop (``execute``), so they run one
trial at a time until ``work`` builds its executor with ``make_executor`` too.

``tune.population: auto`` sizes K from the model's parameter count and the device:

=====================  =====  ======
parameters             CPU    CUDA
=====================  =====  ======
under 100k             16     64
100k to 1M             8      32
1M and more            4      16
=====================  =====  ======

capped at the trials left in the budget (at least 2).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from ..config import ExperimentConfig
from ..errors import FatalError, TrialFailed
from ..rundir import RunDir, TrainingDir
from ._budget import EPOCHS_ATTR, ERROR_ATTR, Budget
from ._loop import StartLock, is_fatal, one_line
from ._measure import COST_METRICS, measure_cost
from ._objective import SICK_STATUSES, FoldOutcome, _findings_of, trial_seed
from ._options import StudyOptions
from ._progress import LiveTable, progress_mode, trial_callbacks
from ._space import suggest
from ._storage import WORKER_ATTR, reclaim_orphans, worker_identity

if TYPE_CHECKING:
    from ._objective import TrainingObjective
    from ._workers import Helpers

NOTICE = "population: {reason}; these trials run one at a time"


# The packing rule's constants (``bench/population.py --packing``, BENCHMARKS.md "Packing
# widths"): a population step's fixed cost, and what one more parameter of a member costs a
# step (fitted over depths 1-4, batches 16-128, widths 8-256 on this CPU, one thread).
STEP_OVERHEAD_NS = 250_000.0
PARAM_NS, PARAM_NS_PER_ROW = 3.6, 0.087
# The model params that may differ between members of one packed population (fits() checks
# that the shapes nest), per builder.
PACKED_MODEL_PARAMS = {"mlp": ("width", "widths", "depth")}


def packing_pays(padding: int, batch_size: int) -> bool:
    """Whether members padded by ``padding`` parameters in all (a group's width's parameter
    count minus each member's own, summed) train faster in one running group than in a
    population of their own: the padding's cost per step against the fixed cost per step of
    the population they spare."""
    return padding * (PARAM_NS + PARAM_NS_PER_ROW * batch_size) <= STEP_OVERHEAD_NS


def auto_population(n_params: int, device: str) -> int:
    """K for ``tune.population: auto`` (the table of the module docstring)."""
    cuda = str(device).startswith("cuda")
    if n_params < 100_000:
        return 64 if cuda else 16
    if n_params < 1_000_000:
        return 32 if cuda else 8
    return 16 if cuda else 4


@dataclass
class _Slot:
    """A running trial in a population slot."""

    trial: optuna.Trial
    cfg: ExperimentConfig
    directory: Path
    pbt: list[dict[str, Any]] = field(default_factory=list)  # PBT exploit events
    n_params: int = 0  # of the trial's own model (packing's cost)


@dataclass
class _Group:
    """One population (one group key) and the trials in its slots."""

    population: Any
    slots: dict[int, _Slot] = field(default_factory=dict)
    n_params: int = 0  # of the population's shape (packing's cost)
    # its key without the packable model params (None: its builder does not pack); a trial
    # with the same pack key may join it (same optimiser, batch size, depth... as its own)
    pack_key: tuple | None = None

    def free_slot(self) -> int | None:
        for k in range(self.population.size):
            if k not in self.slots:
                return k
        return None


class PopulationExecutor:
    """Runs a config study's trials as vectorised populations (see the module doc).

    Args:
        population: K (members running at once) or ``"auto"``.
        helpers: ``--workers`` helper processes already given their specs; this process runs
            its own population while they run theirs.
    """

    name = "population"
    # Whether MLPs of different widths may share a population: a trial joins a running wider
    # group, or widens its own (see "Packing widths"); False: one group per shape.
    pack = True
    # "oldest": each loop trains one epoch of the group holding the oldest running trial, so
    # trials end in the order they were asked, as one at a time, and same-group trials ride
    # along; "round_robin": one epoch of every group per loop (see the module doc).
    schedule = "oldest"
    # Whether trials that differ only in the optimiser (a study that searches train.optimizer
    # or train.nesterov) share one population with a per-member optimiser ("mixed", see
    # tunelab.train's PopulationOptimizer); False: one group per optimiser.
    mix_optimizers = True

    def __init__(self, population: int | str = "auto", helpers: Helpers | None = None) -> None:
        self.population = population
        self.helpers = helpers
        self.stop_reason = ""
        self.notices: list[str] = []
        self.packed_trials = 0  # trials that joined or moved into a wider group (packing)

    # ---- the seam -----------------------------------------------------------------------------

    def run(
        self,
        study: optuna.Study,
        objective: TrainingObjective,
        budget: Budget,
        options: StudyOptions,
    ) -> None:
        if self.helpers is None:
            self.stop_reason = self.run_here(study, objective, budget, options)
            return

        def run_here(progress: str) -> str:
            return self.run_here(study, objective, budget, options, progress=progress)

        self.stop_reason = self.helpers.run(study, run_here)

    def run_here(
        self,
        study: optuna.Study,
        objective: TrainingObjective,
        budget: Budget,
        options: StudyOptions,
        *,
        progress: str | None = None,
        parent_pid: int | None = None,
    ) -> str:
        """This process's share of the study; returns why it stopped."""
        cfg = objective.cfg
        whole = _study_fallback(cfg)
        if whole:
            from ._engine import execute

            self._notice(whole)
            return execute(study, objective, budget, options, progress=progress)
        reclaim_orphans(study, max_retries=options.max_retries)
        budget.restart_clock()
        mode = progress_mode(progress or options.progress)
        display = (
            LiveTable(study, title=options.title) if mode == "rich" else contextlib.nullcontext()
        )
        run = _PopulationRun(self, study, objective, budget, options, trial_callbacks(mode))
        with display:
            return run.loop(parent_pid)

    def _notice(self, reason: str) -> None:
        """One line per study (the first reason); later reasons are kept in ``notices``."""
        if not self.notices:
            print(NOTICE.format(reason=reason), flush=True)
        if reason not in self.notices:
            self.notices.append(reason)


def _study_fallback(cfg: ExperimentConfig) -> str:
    """Why the whole study runs on the local executor ("" when it can run as populations)."""
    if cfg.tune.cv.folds >= 2:
        return "cross-validation (tune.cv.folds) trains folds one after another"
    if cfg.diagnose.enabled:
        return "the doctor (diagnose.enabled) watches one fit at a time"
    return ""


class _PopulationRun:
    """The state of one process's population loop."""

    def __init__(
        self,
        executor: PopulationExecutor,
        study: optuna.Study,
        objective: TrainingObjective,
        budget: Budget,
        options: StudyOptions,
        callbacks: list[Any],
    ) -> None:
        self.executor, self.study, self.objective = executor, study, objective
        self.budget, self.options, self.callbacks = budget, options, callbacks
        self.cfg, self.bundle = objective.cfg, objective.bundle
        self.metrics = list(objective.metrics)
        self.report = len(self.metrics) == 1 and self.metrics[0] not in COST_METRICS
        tune = self.cfg.tune
        self.final_rung = tune.reduction_factor if tune.pruner in ("asha", "hyperband") else None
        self.groups: dict[tuple, _Group] = {}
        self.identity = worker_identity()
        self.lock = StartLock(options.lock_path)
        self.failures: list[str] = []
        self.size: int | None = None if executor.population == "auto" else int(executor.population)
        from ..train import SickTrialPolicy

        self.policy = SickTrialPolicy() if tune.stop_sick_trials else None
        self.pbt = tune.pbt if self.report else None
        self.rng = random.Random(int(self.cfg.seed))
        searched = set(objective.spaces)
        self.mixed = executor.mix_optimizers and bool(
            searched & {"train.optimizer", "train.nesterov"}
        )
        storage = study._storage
        self._heartbeat = False
        with contextlib.suppress(Exception):
            from optuna.storages._heartbeat import is_heartbeat_enabled

            self._heartbeat = is_heartbeat_enabled(storage)

    # ---- the loop ---------------------------------------------------------------------------

    def loop(self, parent_pid: int | None) -> str:
        import os

        reason = ""
        try:
            while True:
                if parent_pid is not None and os.getppid() != parent_pid:
                    return "parent process gone"
                reason = self._fill() or reason
                if not self._live():
                    return reason or self.budget.exhausted(self.study) or ""
                if self.executor.schedule == "oldest":
                    self._epoch(self._oldest_group())
                else:
                    for key in list(self.groups):
                        self._epoch(key)
                self._beat()
        except BaseException:
            self._abandon()
            raise

    def _oldest_group(self) -> tuple:
        """The group holding the oldest running trial (lowest trial number)."""
        return min(
            (key for key, g in self.groups.items() if g.slots),
            key=lambda key: min(s.trial.number for s in self.groups[key].slots.values()),
        )

    def _live(self) -> int:
        return sum(len(g.slots) for g in self.groups.values())

    def _fill(self) -> str:
        """Ask trials until K run (or the budget says stop); returns the budget's reason."""
        while self.size is None or self._live() < self.size:
            self.lock.acquire()
            try:
                reason = self.budget.exhausted(self.study)
                if reason is not None:
                    return reason
                trial = self.study.ask()
                trial.set_user_attr(WORKER_ATTR, self.identity)
            finally:
                self.lock.release()
            self._start(trial)
        return ""

    def _start(self, trial: optuna.Trial) -> None:
        """Place a new trial in a population slot, or run it locally when unsupported."""
        try:
            placed = self._place(trial)
        except Exception as exc:
            self._fail(trial, exc)
            return
        if placed is not None:
            self._local(trial, placed)

    def _place(self, trial: optuna.Trial) -> str | None:
        """Put ``trial`` into its group's population; the reason it cannot, else None."""
        from ..models import build_from_config
        from ..train import MemberSettings, Population, group_key, supports
        from ..train._plan import monitor_of
        from ..train._run import check_training

        if EPOCHS_ATTR in trial.user_attrs:
            trial.set_user_attr(EPOCHS_ATTR, 0)  # a retry inherits its crashed attempt's attrs
        values = suggest(trial, self.objective.spaces)
        seed = trial_seed(self.cfg, trial)  # the member's initial weights and dropout masks
        cfg = self.cfg.with_values({**values, "seed": seed, "train.progress": "none"})
        if cfg.model.checkpoint:
            return "a model.checkpoint (transfer learning) is loaded per trial"
        model, spec = build_from_config(cfg.model, self.bundle, seed=cfg.seed)
        ok, why = supports(model, cfg.train, self.bundle)
        if not ok:
            return why
        check_training(cfg, self.bundle)
        if self.size is None:
            n_params = sum(p.numel() for p in model.parameters())
            self.size = auto_population(n_params, str(_device(cfg.train.device)))
            if self.budget.trials is not None:
                self.size = max(2, min(self.size, self.budget.trials))
        mixed = self.mixed
        key = (spec.builder, repr(spec.input_shape), group_key(cfg.train, spec.params, mixed=mixed))
        n_params = sum(p.numel() for p in model.parameters())
        pack_key = None
        names = PACKED_MODEL_PARAMS.get(spec.builder)
        if names is not None:
            kept = {n: v for n, v in spec.params.items() if n not in names}
            pack_key = (
                spec.builder,
                repr(spec.input_shape),
                group_key(cfg.train, kept, mixed=mixed),
            )
        group = self._packed_group(key, pack_key, spec.params, int(cfg.train.batch_size), n_params)
        if group is not None:
            self.executor.packed_trials += 1
        else:
            group = self.groups.get(key)
        if group is None:
            train = cfg.train
            has_val = len(self.bundle.X_val) > 0
            population = Population(
                spec,
                self.bundle,
                self.size,
                optimizer="mixed" if mixed else train.optimizer,
                batch_size=int(train.batch_size),
                nesterov=bool(train.nesterov) and not mixed,
                loss=train.loss,
                monitor=monitor_of(train, self.bundle.task, has_val),
                device=train.device,
                # the study's seed goes into the dropout streams; a member's batch order
                # comes from its trial's seed (replace_member below), as its init does
                seed=int(self.cfg.seed),
                judge=self._judge,
                eval_batch_size=train.eval_batch_size,
            )
            group = self.groups[key] = _Group(population, n_params=n_params, pack_key=pack_key)
        k = group.free_slot()
        assert k is not None  # at most K run in all, and each population has K slots
        directory = RunDir(self.objective.run_dir).trial(trial.number).path
        if directory.exists():
            shutil.rmtree(directory)  # only a crashed attempt can have left one
        directory.mkdir(parents=True)
        TrainingDir(directory).config.write_text(cfg.to_yaml(), encoding="utf-8")
        TrainingDir(directory).metrics.write_text("", encoding="utf-8")
        group.population.replace_member(
            k, MemberSettings.from_config(cfg.train, spec.params), cfg.seed, spec.params
        )
        group.slots[k] = _Slot(trial, cfg, directory, n_params=n_params)
        if group.n_params == n_params:
            self._absorb(group, int(cfg.train.batch_size))
        return None

    def _absorb(self, group: _Group, batch_size: int) -> None:
        """Widen ``group``: the members of every running group of a narrower MLP with its pack
        key move into it (``Population.adopt_member``, exact) where their padding in all pays
        for the population they leave (module doc, "Packing widths")."""
        if not self.executor.pack or group.pack_key is None:
            return
        for other in list(self.groups.values()):
            if other is group or not other.slots or other.pack_key != group.pack_key:
                continue
            if other.n_params >= group.n_params:
                continue
            padding = sum(group.n_params - slot.n_params for slot in other.slots.values())
            if not packing_pays(padding, batch_size):
                continue
            if group.population.fits(other.population.spec.params):
                continue
            for k in sorted(other.slots):
                dst = group.free_slot()
                assert dst is not None  # at most K run in all
                group.population.adopt_member(other.population, k, dst)
                group.slots[dst] = other.slots.pop(k)
                self.executor.packed_trials += 1

    def _packed_group(
        self,
        key: tuple,
        pack_key: tuple | None,
        params: dict[str, Any],
        batch_size: int,
        n_params: int,
    ) -> _Group | None:
        """The running group of a wider MLP a trial (group ``key``, ``pack_key``, model
        ``params`` of ``n_params`` parameters) should join (module doc, "Packing widths"), or
        None: its own group (when that holds a running member, or nothing packs or pays)."""
        own = self.groups.get(key)
        if not self.executor.pack or pack_key is None or (own is not None and own.slots):
            return None
        best = None
        for other_key, group in self.groups.items():
            if other_key == key or not group.slots or group.pack_key != pack_key:
                continue
            if group.n_params < n_params or not packing_pays(group.n_params - n_params, batch_size):
                continue
            if group.population.fits(params):
                continue
            if best is None or group.n_params < best.n_params:
                best = group
        return best

    def _judge(
        self, epoch: int, metrics: dict[str, Any], history: list[dict[str, Any]]
    ) -> tuple[str, str] | None:
        """The population's judge: :class:`SickTrialPolicy`'s ``judge_epoch``."""
        sickness = self._sickness(epoch, metrics, history)
        return None if sickness is None else (sickness.status, sickness.reason(metrics.get("lr")))

    def _sickness(self, epoch: int, metrics: dict[str, Any], history: list[dict[str, Any]]) -> Any:
        if self.policy is None:
            return None
        earlier = [h.get("train_loss") for h in history[:-1]]
        finite = [float(v) for v in earlier if v is not None and math.isfinite(float(v))]
        best = min(finite) if finite else math.inf
        return self.policy.judge_epoch(epoch, metrics, best_loss=best)

    def _local(self, trial: optuna.Trial, reason: str) -> None:
        """An unsupported trial: the local objective trains it, now, in this process."""
        self.executor._notice(reason)
        try:
            value = self.objective(trial)
        except optuna.TrialPruned:
            self._tell(trial, TrialState.PRUNED)
        except Exception as exc:
            self._fail(trial, exc)
        else:
            self._tell(trial, TrialState.COMPLETE, value)

    # ---- one epoch of one population ---------------------------------------------------------

    def _epoch(self, key: tuple) -> None:
        group = self.groups[key]
        if not group.slots:
            return
        try:
            metrics = group.population.train_epoch()
        except Exception as exc:
            for k in list(group.slots):
                self._fail(group.slots.pop(k).trial, exc)
            del self.groups[key]
            return
        for k, row in metrics.items():
            slot = group.slots.get(k)
            if slot is not None:
                self._after_epoch(group, k, slot, row)
        if self.pbt is not None:
            self._exploit(group, metrics)
        self._compact(group)

    def _compact(self, group: _Group) -> None:
        """Move the highest running members into the free slots below them: a population trains
        its slots up to the highest running one, so gaps left by members that ended (when no
        new trial refills them) would still cost. A moved member computes what it would have."""
        pop = group.population
        while group.slots:
            free = group.free_slot()
            top = max(group.slots)
            if free is None or free > top:
                return
            member = pop.members[top]
            if member is None or not member.running:
                return
            pop.move_member(top, free)
            group.slots[free] = group.slots.pop(top)

    def _exploit(self, group: _Group, rows: dict[int, dict[str, Any]]) -> None:
        """PBT: the bottom quantile of the running members (by tune.metric this epoch) that sit
        at a multiple of ``interval`` epochs copy a random top-quantile member's weights and
        optimiser state, with its lr and weight decay each times 1 -/+ perturb (at random)."""
        from optuna.study import StudyDirection

        pbt, pop, metric = self.pbt, group.population, self.metrics[0]
        assert pbt is not None
        scored = []
        for k in group.slots:
            member, row = pop.members[k], rows.get(k)
            value = None if row is None else row.get(metric)
            if member is None or not member.running or value is None:
                continue
            if math.isfinite(float(value)):
                scored.append((float(value), k))
        if len(scored) < 2:
            return
        scored.sort(reverse=self.study.direction == StudyDirection.MAXIMIZE)  # best first
        n = max(1, int(len(scored) * pbt.quantile))
        top = [k for _, k in scored[:n]]
        for _, k in scored[-n:]:
            member = pop.members[k]
            if k in top or member.epoch % pbt.interval or member.epoch >= member.settings.epochs:
                continue
            # a packed group: weights are copied only between members of one shape, and a mixed
            # one's only between members of one optimiser (its state is that optimiser's)
            alike = [
                t
                for t in top
                if pop.members[t].model_params == member.model_params
                and pop.members[t].settings.optimizer == member.settings.optimizer
            ]
            if not alike:
                continue
            src = self.rng.choice(alike)
            settings = pop.members[src].settings
            lr = settings.lr * self.rng.choice((1 - pbt.perturb, 1 + pbt.perturb))
            wd = settings.weight_decay * self.rng.choice((1 - pbt.perturb, 1 + pbt.perturb))
            pop.copy_member(src, k)
            pop.update_member(k, lr=lr, weight_decay=wd)
            slot = group.slots[k]
            slot.pbt.append(
                {
                    "epoch": member.epoch,
                    "copied_from_trial": group.slots[src].trial.number,
                    "lr": lr,
                    "weight_decay": wd,
                }
            )
            slot.trial.set_user_attr("pbt_history", list(slot.pbt))

    def _after_epoch(self, group: _Group, k: int, slot: _Slot, row: dict[str, Any]) -> None:
        from ..train._loggers import jsonable

        pop, trial = group.population, slot.trial
        member = pop.members[k]
        with open(TrainingDir(slot.directory).metrics, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(jsonable(row)) + "\n")
        metric = self.metrics[0]
        if metric not in row and metric not in COST_METRICS and member.status not in SICK_STATUSES:
            from ..errors import ConfigError

            known = ", ".join(sorted(m for m in row if isinstance(row[m], (int, float))))
            del group.slots[k]
            self._fail(
                trial,
                ConfigError(
                    f"config error: tune.metric = {metric!r} — not an epoch metric; "
                    f"the trainer reports {known}"
                ),
            )
        value = float(row.get(metric, math.nan))
        if self.report and member.status not in SICK_STATUSES and math.isfinite(value):
            trial.report(value, member.epoch)
            last = int(slot.cfg.train.epochs)
            final = member.epoch >= last or (
                self.final_rung is not None and member.epoch * self.final_rung > last
            )
            if member.running and not final and trial.should_prune():
                pop.stop_member(
                    k,
                    "pruned",
                    f"pruned at epoch {member.epoch}: {metric}={value:.4g} behind other trials",
                )
        if not member.running:
            del group.slots[k]
            self._finish(pop, k, slot)

    def _finish(self, pop: Any, k: int, slot: _Slot) -> None:
        """Record a member that left: its files, its user attributes, its state."""
        trial = slot.trial
        try:
            outcome = self._outcome(pop, k, slot)
            self.objective._record_progress(trial, [outcome])
            self.objective._end_if_stopped(trial, outcome)
            value = self.objective._finish(trial, [outcome], self.metrics)
        except optuna.TrialPruned:
            self._tell(trial, TrialState.PRUNED)
        except Exception as exc:
            self._fail(trial, exc)
        else:
            self._tell(trial, TrialState.COMPLETE, value)

    def _outcome(self, pop: Any, k: int, slot: _Slot) -> FoldOutcome:
        from ..models import save_model
        from ..train._loggers import jsonable

        member = pop.members[k]
        result = pop.member_result(k)
        sickness = None
        if member.status in SICK_STATUSES:
            sickness = self._sick_verdict(member)
            result.sickness = sickness
        best = TrainingDir(slot.directory).best_model
        model = None
        if member.best_epoch is not None:
            model = pop.member_module(k).cpu()
            metrics = {"best_epoch": member.best_epoch, **member.best_metrics}
            save_model(
                best,
                model,
                pop.member_spec(k),
                getattr(self.bundle, "preprocessing", None),
                metrics={
                    m: v for m, v in metrics.items() if not isinstance(v, float) or math.isfinite(v)
                },
            )
        values: list[float] = []
        if member.status not in SICK_STATUSES and member.status != "pruned":
            for metric in self.metrics:
                if metric in COST_METRICS:
                    if model is None:
                        raise TrialFailed(f"no best epoch to measure {metric} on")
                    weights = best / "model.safetensors"
                    values.append(measure_cost(metric, model, self.bundle.X_val, weights))
                elif metric not in member.best_metrics:
                    raise TrialFailed(f"metric {metric!r} not in the member's best metrics")
                else:
                    values.append(float(member.best_metrics[metric]))
        summary = {
            "name": slot.cfg.name,
            "status": result.status,
            "reason": result.reason,
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "best_metrics": result.best_metrics,
            "final_metrics": member.history[-1] if member.history else {},
            "test_metrics": {},
            "task": self.bundle.task,
            "model": {"builder": pop.spec.builder, "params": pop.member_spec(k).params},
            "wall_time_s": result.wall_time_s,
            "sickness": sickness.to_dict() if sickness is not None else None,
            "executor": "population",
            "signals": member.signals,
        }
        TrainingDir(slot.directory).result.write_text(
            json.dumps(jsonable(summary), indent=2), encoding="utf-8"
        )
        return FoldOutcome.of_fit(result, values, slot.directory, _findings_of(None, sickness))

    def _sick_verdict(self, member: Any) -> Any:
        """The :class:`Sickness` of a member that left sick (the policy's pure judgement)."""
        from ..train import Sickness, SickTrialPolicy

        metrics = member.history[-1] if member.history else {}
        policy = self.policy or SickTrialPolicy()
        earlier = [h.get("train_loss") for h in member.history[:-1]]
        finite = [float(v) for v in earlier if v is not None and math.isfinite(float(v))]
        verdict = policy.judge_epoch(
            member.epoch, metrics, best_loss=min(finite) if finite else math.inf
        )
        if verdict is None:  # masked mid-epoch: the step's loss was NaN/inf
            verdict = Sickness(
                "exploding_gradients",
                member.reason,
                {"train_loss": str(metrics.get("train_loss"))},
                member.epoch,
                0,
                "nan",
            )
        return verdict

    # ---- telling the study ------------------------------------------------------------------

    def _tell(self, trial: optuna.Trial, state: TrialState, value: Any = None) -> None:
        frozen = _tell(self.study, trial, state, value if state == TrialState.COMPLETE else None)
        for callback in self.callbacks:
            callback(self.study, frozen)
        if state == TrialState.FAIL:
            self.failures.append(str(frozen.user_attrs.get(ERROR_ATTR, "unknown error")))
            if len(self.failures) >= self.options.max_consecutive_failures and not _any_success(
                self.study
            ):
                raise FatalError(
                    f"error: the first {len(self.failures)} trials all failed, stopping the "
                    f"study; last error: {self.failures[-1]}"
                )
        else:
            self.failures.clear()

    def _fail(self, trial: optuna.Trial, exc: BaseException) -> None:
        trial.set_user_attr(ERROR_ATTR, one_line(exc))
        trial.set_user_attr("error_type", type(exc).__name__)
        self._tell(trial, TrialState.FAIL)
        if is_fatal(exc):
            raise exc

    def _beat(self) -> None:
        if not self._heartbeat:
            return
        for group in self.groups.values():
            for slot in group.slots.values():
                with contextlib.suppress(Exception):
                    self.study._storage.record_heartbeat(slot.trial._trial_id)

    def _abandon(self) -> None:
        """Ctrl-C or a fatal error: the running trials fail without an error and are queued
        again (as the local loop re-queues an interrupted trial)."""
        retry = RetryHeartbeatStaleTrialCallback(max_retry=self.options.max_retries)
        for group in self.groups.values():
            for slot in group.slots.values():
                with contextlib.suppress(Exception):
                    frozen = _tell(self.study, slot.trial, TrialState.FAIL)
                    retry(self.study, frozen)
            group.slots.clear()


def _tell(study: optuna.Study, trial: optuna.Trial, state: TrialState, value: Any = None) -> Any:
    """``study.tell`` outside ``optimize``: a sampler's ``study.stop()`` (the grid sampler's,
    once every point has been asked) only sets the flag it sets inside ``optimize``; the
    budget (``grid_size``) is what stops this loop."""
    local = study._thread_local
    inside = getattr(local, "in_optimize_loop", False)
    local.in_optimize_loop = True
    try:
        return study.tell(trial, value, state=state)
    finally:
        local.in_optimize_loop = inside
        study._stop_flag = False


def _any_success(study: optuna.Study) -> bool:
    states = (TrialState.COMPLETE, TrialState.PRUNED)
    return bool(study._storage.get_all_trials(study._study_id, deepcopy=False, states=states))


def _device(device: str) -> Any:
    from ..train._setup import resolve_device

    return resolve_device(device)
