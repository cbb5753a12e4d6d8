"""`rl tune ALGO ENV --trials N`: hyperparameter search with Optuna (as rl-baselines3-zoo's `--optimize`).

Each trial trains the preset with sampled hyperparameters over it for `budget` steps, evaluating
greedily every `eval_every` steps; every evaluation is reported to Optuna, so the pruner can stop a
weak trial early, and the last one is the trial's value. The study lives in a storage (SQLite under
`runs/tune/<study>/` unless `--storage` names another): a stopped study resumes where it was, and
`--n-jobs K` runs K worker processes on the same storage.

Written to `runs/tune/<study>/`: `best_hyperparameters.json` (what `rl train --hyperparams FILE`
takes), `trials.md` and `trials.csv`, Optuna's optimisation history and parameter importances as PNG
(matplotlib), each trial's TensorBoard run under `trials/`, and TensorBoard's HPARAMS tab comparing the
trials under `hparams/`.

A search space maps hyperparameter names to `{"low": L, "high": H, "log": bool, "int": bool}` or
`{"choices": [...]}`; a `--search-space` file (JSON or YAML, read as data only) replaces or adds
entries of the agent's default space.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlcore.callbacks import Callback
from rlcore.config import ConfigError, split_settings

SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "halving", "none")


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    log: bool = False
    int: bool = False


@dataclass(frozen=True)
class Choice:
    choices: tuple[Any, ...]


_GAMMAS = Choice((0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999))
# After the zoo's samplers (rl_zoo3/hyperparams_opt.py), narrowed to values our configs accept as a set.
DEFAULT_SPACES: dict[str, dict[str, Range | Choice]] = {
    "ppo": {"learning_rate": Range(1e-5, 1e-2, log=True), "n_steps": Choice((16, 32, 64, 128, 256, 512, 1024)),
            "n_epochs": Choice((1, 5, 10, 20)), "gamma": _GAMMAS, "gae_lambda": Choice((0.8, 0.9, 0.92, 0.95, 0.98, 1.0)),
            "clip_range": Choice((0.1, 0.2, 0.3, 0.4)), "ent_coef": Range(1e-8, 0.1, log=True),
            "vf_coef": Range(0.2, 1.0), "max_grad_norm": Choice((0.3, 0.5, 1.0, 2.0, 5.0))},
    "a2c": {"learning_rate": Range(1e-5, 1e-2, log=True), "n_steps": Choice((4, 8, 16, 32, 64, 128)),
            "gamma": _GAMMAS, "gae_lambda": Choice((0.8, 0.9, 0.92, 0.95, 0.98, 1.0)),
            "ent_coef": Range(1e-8, 0.1, log=True), "vf_coef": Range(0.2, 1.0),
            "max_grad_norm": Choice((0.3, 0.5, 1.0, 2.0, 5.0))},
    "dqn": {"learning_rate": Range(1e-5, 1e-2, log=True), "batch_size": Choice((32, 64, 128, 256)),
            "gamma": _GAMMAS, "train_freq": Choice((1, 4, 8, 16)), "target_update_interval": Choice((10, 100, 1_000)),
            "exploration_fraction": Range(0.05, 0.5), "exploration_final_eps": Range(0.0, 0.2)},
    "sac": {"learning_rate": Range(1e-5, 1e-2, log=True), "batch_size": Choice((64, 128, 256, 512)),
            "gamma": _GAMMAS, "tau": Choice((0.001, 0.005, 0.01, 0.02, 0.05)), "train_freq": Choice((1, 4, 8, 16))},
    "td3": {"learning_rate": Range(1e-5, 1e-2, log=True), "batch_size": Choice((64, 128, 256, 512)),
            "gamma": _GAMMAS, "tau": Choice((0.001, 0.005, 0.01, 0.02, 0.05)),
            "action_noise_std": Range(0.0, 0.5)},
}
DEFAULT_SPACES["ddpg"] = DEFAULT_SPACES["td3"]
DEFAULT_SPACES["reinforce"] = {k: DEFAULT_SPACES["a2c"][k] for k in ("learning_rate", "n_steps", "gamma")}


def read_data_file(path: str, flag: str) -> Any:
    """A JSON or YAML file's contents, read as plain data (YAML's safe loader builds no Python objects)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{flag} {path}: no such file.")
    try:
        if file.suffix in (".yml", ".yaml"):
            import yaml

            return yaml.safe_load(file.read_text())
        return json.loads(file.read_text())
    except Exception as exc:  # noqa: BLE001  (json's and yaml's parse errors)
        raise ConfigError(f"{flag} {path} cannot be read: {str(exc).splitlines()[0]}") from None


# ----- search spaces -------------------------------------------------------------------------
def parse_space(algo: str, raw: dict[str, Any], where: str) -> dict[str, Range | Choice]:
    """`raw` (a search-space file's contents) checked against the agent's settings: one-line errors for an
    unknown name (listing the valid ones), a range that cannot be sampled, or an entry of the wrong form."""
    from agents import AGENTS

    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a search space maps hyperparameter names to ranges, got {type(raw).__name__}.")
    split_settings({"agent": AGENTS[algo].config_class}, raw, where)  # the names every setting path checks
    space: dict[str, Range | Choice] = {}
    for name, entry in raw.items():
        if isinstance(entry, dict) and set(entry) == {"choices"} and isinstance(entry["choices"], list) and entry["choices"]:
            space[name] = Choice(tuple(entry["choices"]))
            continue
        if not (isinstance(entry, dict) and {"low", "high"} <= set(entry) <= {"low", "high", "log", "int"}
                and all(isinstance(entry[k], (int, float)) and not isinstance(entry[k], bool) for k in ("low", "high"))):
            raise ConfigError(f"{where}: {name}: give {{\"low\": L, \"high\": H}} (with \"log\": true or \"int\": true "
                              f"if wanted) or {{\"choices\": [...]}} with at least one value, not {entry!r}.")
        r = Range(float(entry["low"]), float(entry["high"]), bool(entry.get("log", False)), bool(entry.get("int", False)))
        if not (math.isfinite(r.low) and math.isfinite(r.high)):
            raise ConfigError(f"{where}: {name}: low {entry['low']} and high {entry['high']} must be finite numbers.")
        if r.low > r.high:
            raise ConfigError(f"{where}: {name}: low {entry['low']} is above high {entry['high']}: nothing can be "
                              "sampled (swap them).")
        if r.log and r.low <= 0:
            raise ConfigError(f"{where}: {name}: a log range must lie above zero, but low is {entry['low']}: raise low "
                              "or drop \"log\".")
        space[name] = r
    return space


def load_space(algo: str, path: str | None) -> dict[str, Range | Choice]:
    """The agent's default space with a search-space file's entries over it."""
    space = dict(DEFAULT_SPACES.get(algo, {}))
    if path is None:
        return space
    raw = read_data_file(path, "--search-space")
    space.update(parse_space(algo, raw, f"--search-space {path}"))
    return space


def sample(trial: Any, space: dict[str, Range | Choice]) -> dict[str, Any]:
    out = {}
    for name, entry in space.items():
        if isinstance(entry, Choice):
            out[name] = trial.suggest_categorical(name, list(entry.choices))
        elif entry.int:
            out[name] = trial.suggest_int(name, int(entry.low), int(entry.high), log=entry.log)
        else:
            out[name] = trial.suggest_float(name, entry.low, entry.high, log=entry.log)
    return out


# ----- the study ------------------------------------------------------------------------------
@dataclass
class TuneSettings:
    algo: str
    env_id: str
    trials: int
    budget: int
    eval_every: int
    eval_episodes: int = 10
    sampler: str = "tpe"
    pruner: str = "median"
    study_name: str | None = None
    storage: str | None = None
    n_jobs: int = 1
    search_space: str | None = None
    seed: int = 0
    out: str = "runs/tune"

    def check(self) -> None:
        for name, low in (("trials", 1), ("budget", 1), ("eval_every", 1), ("eval_episodes", 1), ("n_jobs", 1)):
            if getattr(self, name) < low:
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)} is invalid: must be >= {low}.")
        if self.eval_every > self.budget:
            raise ConfigError(f"--eval-every {self.eval_every:,} is above --budget {self.budget:,}: no evaluation would "
                              "feed the pruner or score the trial.")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"--sampler {self.sampler!r}: choose one of {', '.join(SAMPLERS)}.")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"--pruner {self.pruner!r}: choose one of {', '.join(PRUNERS)}.")

    @property
    def name(self) -> str:
        return self.study_name or f"{self.algo}_{self.env_id}"

    @property
    def root(self) -> Path:
        return Path(self.out) / self.name

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{(self.root / 'study.db').resolve()}"


class ReportToOptuna(Callback):
    """Each evaluation becomes an intermediate value of the trial; a pruned trial stops its run."""

    def __init__(self, trial: Any):
        self.trial, self.pruned = trial, False

    def on_evaluation(self, agent: Any, step: int, mean_return: float) -> bool:
        self.trial.report(mean_return, step)
        self.pruned = self.trial.should_prune()
        return not self.pruned


def open_study(s: TuneSettings) -> Any:
    """The study in its storage, created or resumed; an unusable storage is a one-line error."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(n_startup_trials=5, seed=s.seed) if s.sampler == "tpe" else \
        optuna.samplers.RandomSampler(seed=s.seed)
    warmup = max(s.budget // 3, s.eval_every)
    pruner = {"median": optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup),
              "halving": optuna.pruners.SuccessiveHalvingPruner(min_resource=s.eval_every),
              "none": optuna.pruners.NopPruner()}[s.pruner]
    if s.storage is None:
        s.root.mkdir(parents=True, exist_ok=True)
    try:
        return optuna.create_study(study_name=s.name, storage=s.storage_url, sampler=sampler, pruner=pruner,
                                   direction="maximize", load_if_exists=True)
    except Exception as exc:  # noqa: BLE001  (SQLAlchemy's and Optuna's errors for an unusable URL)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"--storage {s.storage_url}: cannot open the study there ({first}). Give a database URL such "
                          "as sqlite:///runs/tune/study.db, or leave --storage out.") from None


def objective(s: TuneSettings, space: dict[str, Range | Choice], trial: Any) -> float:
    import optuna

    from agents import AGENTS

    params = sample(trial, space)
    agent = AGENTS[s.algo](s.env_id, seed=s.seed, checkpoint_interval=0, **params)
    report = ReportToOptuna(trial)
    agent.learn(s.budget, run_dir=s.root / "trials" / f"trial{trial.number}", progress=False, eval_every=s.eval_every,
                eval_episodes=s.eval_episodes, callbacks=[report])
    if report.pruned:
        raise optuna.TrialPruned()
    return float(agent.summary["final_mean_return"])


def _run_trials(study: Any, s: TuneSettings, space: dict[str, Range | Choice], trials: int) -> None:
    # A sampled combination a config refuses (e.g. a batch larger than the rollout) fails that trial only.
    study.optimize(lambda t: objective(s, space, t), n_trials=trials, catch=(ConfigError,))


def _worker(s: TuneSettings, space: dict[str, Range | Choice], trials: int) -> None:
    """One worker process of --n-jobs: `trials` more trials of the study, opened from its storage."""
    _run_trials(open_study(s), s, space, trials)


def tune(s: TuneSettings) -> dict[str, Any]:
    """Run the study and write its results; returns the best trial's record."""
    from agents import AGENTS

    s.check()
    if s.algo not in AGENTS:
        raise ConfigError(f"rl tune: unknown agent {s.algo!r}; agents: {', '.join(AGENTS)}.")
    space = load_space(s.algo, s.search_space)
    if not space:
        raise ConfigError(f"rl tune {s.algo}: no default search space; give one with --search-space FILE.")
    AGENTS[s.algo](s.env_id, checkpoint_interval=0)  # an unknown id or an unfit action space fails before the study
    study = open_study(s)  # a bad storage fails here, before any worker starts
    started = time.perf_counter()
    if s.n_jobs == 1:
        _run_trials(study, s, space, s.trials)
    else:
        shares = [s.trials // s.n_jobs + (i < s.trials % s.n_jobs) for i in range(s.n_jobs)]
        context = multiprocessing.get_context("spawn")  # a fresh interpreter per worker: no forked torch state
        with context.Pool(s.n_jobs) as pool:
            pool.starmap(_worker, [(s, space, n) for n in shares if n])
    return write_results(s, study, time.perf_counter() - started)  # the storage holds every worker's trials


def write_results(s: TuneSettings, study: Any, wall: float) -> dict[str, Any]:
    import optuna

    s.root.mkdir(parents=True, exist_ok=True)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    rows = [f"| {t.number} | {t.state.name.lower()} | {'' if t.value is None else f'{t.value:.2f}'} | "
            f"{max(t.intermediate_values) if t.intermediate_values else 0:,} | "
            + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items()) + " |"
            for t in study.trials]
    (s.root / "trials.md").write_text(
        f"# {s.name}: {len(study.trials)} trials of {s.algo} on {s.env_id}\n\n"
        "| trial | state | value (last evaluation) | steps | hyperparameters |\n|---|---|---|---|---|\n"
        + "\n".join(rows) + "\n")
    study.trials_dataframe().to_csv(s.root / "trials.csv", index=False)
    if not done:
        raise ConfigError(f"rl tune: none of the {len(study.trials)} trials completed (pruned or refused by the "
                          f"config; see {s.root / 'trials.md'}): widen the search space or raise --budget.")
    best = study.best_trial
    record = {"algo": s.algo, "env_id": s.env_id, "hyperparameters": {**best.params}, "value": best.value,
              "trial": best.number, "budget": s.budget, "study": s.name, "storage": s.storage_url,
              "trials": len(study.trials), "completed": len(done), "wall_time": round(wall, 1)}
    (s.root / "best_hyperparameters.json").write_text(json.dumps(record, indent=2))
    write_hparams(s, study)
    record["plots"] = plot(s, study)
    return record


def write_hparams(s: TuneSettings, study: Any) -> None:
    """TensorBoard's HPARAMS tab: one entry per finished trial, its hyperparameters against its value."""
    import optuna
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(s.root / "hparams")) as writer:
        for t in study.trials:
            if t.state == optuna.trial.TrialState.COMPLETE:
                writer.add_hparams({k: v for k, v in t.params.items()}, {"hparam/return": t.value},
                                   run_name=f"trial{t.number}")


def plot(s: TuneSettings, study: Any) -> list[str]:
    """Optuna's optimisation history and (with two or more finished trials) parameter importances."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from optuna.visualization import matplotlib as ovm
    except ImportError:
        return []
    import warnings

    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib backend experimental
        ovm.plot_optimization_history(study)
        plt.tight_layout()
        plt.savefig(s.root / "history.png", dpi=100)
        plt.close("all")
        written.append(str(s.root / "history.png"))
        completed = [t for t in study.trials if t.value is not None]
        if len(completed) >= 2 and len({tuple(sorted(t.params.items())) for t in completed}) >= 2:
            try:
                ovm.plot_param_importances(study)
                plt.tight_layout()
                plt.savefig(s.root / "importances.png", dpi=100)
                written.append(str(s.root / "importances.png"))
            except (RuntimeError, ValueError, ZeroDivisionError):
                pass  # importances need variation among the finished trials' values
            plt.close("all")
    return written


def load_hyperparameters(path: str) -> dict[str, Any]:
    """`rl train --hyperparams FILE`: the hyperparameters of a `best_hyperparameters.json` (or any JSON or
    YAML mapping, or one with a `hyperparameters` key), read as data only."""
    raw = read_data_file(path, "--hyperparams")
    params = raw.get("hyperparameters", raw) if isinstance(raw, dict) else None
    if not isinstance(params, dict):
        raise ConfigError(f"--hyperparams {path}: expected a mapping of hyperparameter names to values.")
    return params
