"""Change-level defect data for the deployment-risk model: load a CSV, map its columns onto
the warehouse's names, validate it, and split it in time order.

The warehouse stores Kamei et al.'s 14 change metrics (TSE 2013) under these names, in raw
units: ns, nd, nf (subsystems, directories, files touched), entropy (bits), la, ld (lines
added/deleted), lt (lines in the touched files before the change, summed), fix, ndev,
age (mean days since the touched files last changed), nuc, exp, rexp, sexp.

Public datasets spell and scale some of them differently; a *profile* says how:

- ``kamei2013``: Kamei's own release (columns ``nm``, ``pd``, ``npt``). ``nm`` is ND, ``pd``
  is AGE and ``npt`` is NUC. As the paper says, that release normalises LA and LD by LT,
  and LT and NUC by NF; entropy is normalised by log2(NF). Checked on the four projects:
  ``la*lt*nf``, ``lt*nf`` and ``npt*nf`` are whole numbers in 100 % of the rows while
  ``la*lt`` is not in ~25 %, so lines added = ``la*lt*nf`` (not ``la*lt``). ``pd`` is a
  whole number of days summed over the touched files (it exceeds the project's lifetime in
  1-3 % of the rows, which a mean cannot), so AGE = ``pd/nf``. The profile undoes all of
  this, giving raw units.
- ``apachejit``: ApacheJIT (MSR 2022): ``ent``, ``aexp``, ``arexp``, ``asexp``; it has no LT.
- ``commitguru``: files written by Commit Guru and the datasets built with it, among them
  the six projects (gerrit, go, jdt, openstack, platform, qt) of Zeng et al., "Deep
  just-in-time defect prediction: how far are we?" (ISSTA 2021; repository
  ZZR0/ISSTA21-JIT-DP, ``Data_Extraction/git_base/datasets/<project>/*_k_feature.csv`` and
  ``cross/k_test.csv``): header ``,_id,date,bug,__,ns,nd,nf,entrophy,la,ld,lt,fix,ndev,age,
  nuc,exp,rexp,sexp`` -- entropy spelt ``entrophy``, ``_id`` the commit hash, ``date`` epoch
  seconds, ``__`` a second copy of the label, a leading unnamed index column. Checked on
  their rows: ``la``, ``ld``, ``lt``, ``nuc``, ``exp``, ``sexp`` are whole numbers (raw line
  and change counts, ``lt`` summed over the files: 22,483 for 8 files), ``age`` is
  fractional days, so no unit needs undoing. Commit Guru's own export uses the same
  spelling with ``commit_hash``, ``author_date_unix_timestamp`` and ``contains_bug``.
- ``canonical``: the warehouse's own names; all 14 metrics required.

`--columns-map new=old` entries override a profile's renames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from timbel_dagster.records.delivery import KAMEI_METRICS

if TYPE_CHECKING:
    import pandas as pd

# The warehouse's names of Kamei's 14 metrics (see the module docstring), in the paper's order.
FEATURES = KAMEI_METRICS
LABEL = "label"  # the loaded frame's outcome column: 1 = the change caused a defect/failure
TIME = "time"  # the loaded frame's timestamp column (UTC)
GROUP = "group"  # the loaded frame's repository/project column, when the file has one
LABEL_CANDIDATES = (
    "bug",
    "buggy",
    "failed",
    "label",
    "defective",
    "contains_bug",
    "is_buggy_commit",
)
TIME_CANDIDATES = (
    "commitdate",
    "author_date_unix_timestamp",
    "author_date",
    "committed_at",
    "commit_date",
    "authored_at",
    "time",
    "timestamp",
    "date",
)
ID_CANDIDATES = ("commit_id", "sha", "commit_hash", "transactionid", "id", "_id")
GROUP_CANDIDATES = ("repository", "project", "repo")
TRAIN_FRACTION = 0.8
MIN_TRAIN_ROWS = 50
# How many past deployments most like a change its confidence is measured on.
NEIGHBOURS = 20
MIN_TEST_ROWS = 20
PROFILE_NAMES = ("auto", "kamei2013", "apachejit", "commitguru", "canonical")


@dataclass(frozen=True)
class Profile:
    """How one dataset family names and scales the 14 metrics."""

    name: str
    rename: dict[str, str]  # warehouse name -> the dataset's column
    absent: tuple[str, ...] = ()  # metrics the dataset does not have
    normalised: bool = False  # Kamei's release scaling, undone on load


PROFILES = {
    "kamei2013": Profile("kamei2013", {"nd": "nm", "age": "pd", "nuc": "npt"}, normalised=True),
    "apachejit": Profile(
        "apachejit",
        {"entropy": "ent", "exp": "aexp", "rexp": "arexp", "sexp": "asexp"},
        absent=("lt",),
    ),
    "commitguru": Profile("commitguru", {"entropy": "entrophy"}),
    "canonical": Profile("canonical", {}),
}


@dataclass(frozen=True)
class RiskDataset:
    """A validated frame: the metrics under warehouse names (raw units), `label` (0/1),
    `time` (UTC, when the file has one) and `group` (the repository or project, when the file
    has one), indexed by the file's commit id where it has one."""

    frame: pd.DataFrame
    features: tuple[str, ...]
    source: str
    profile: str
    label_column: str
    time_column: str | None
    group_column: str | None = None
    renames: dict[str, str] = field(default_factory=dict)


def parse_columns_map(text: str | None) -> dict[str, str]:
    """`new=old,new2=old2` -> {"new": "old", ...}; `new` is a warehouse metric name."""
    mapping: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        new, sep, old = item.partition("=")
        if not sep or not new.strip() or not old.strip():
            raise ValueError(f"--columns-map entry {item.strip()!r} is not new=old")
        mapping[new.strip()] = old.strip()
    return mapping


def detect_profile(columns: list[str]) -> str:
    """The profile whose tell-tale columns the file has, else `canonical`."""
    present = set(columns)
    if {"nm", "pd", "npt"} <= present:
        return "kamei2013"
    if {"ent", "aexp"} <= present:
        return "apachejit"
    if "entrophy" in present:
        return "commitguru"
    return "canonical"


def _pick(columns: list[str], wanted: str | None, candidates: tuple[str, ...], what: str) -> str:
    if wanted:
        if wanted not in columns:
            raise ValueError(f"{what} column {wanted!r} not found; the file has {columns}")
        return wanted
    found = [c for c in candidates if c in columns]
    if not found:
        raise ValueError(
            f"no {what} column found (looked for {', '.join(candidates)}); "
            f"pass --{what} COLUMN; the file has {columns}"
        )
    return found[0]


def _labels(values: pd.Series, column: str, source: str) -> pd.Series:
    import pandas as pd

    words = {"true": 1, "false": 0, "yes": 1, "no": 0, "1": 1, "0": 0, "1.0": 1, "0.0": 0}
    mapped = values.astype(str).str.strip().str.lower().map(words)
    bad = mapped.isna()
    if bad.any():
        line = int(bad.to_numpy().argmax()) + 2  # +1 for the header, +1 for 1-based lines
        raise ValueError(
            f"{source}: label column {column!r} line {line} has {values[bad].iloc[0]!r}; "
            "expected 0/1 or true/false"
        )
    return pd.Series(mapped.astype(int).to_numpy(), index=values.index)


def parse_times(values: pd.Series, column: str, source: str) -> pd.Series:
    """Epoch seconds (or milliseconds, when the numbers are that large) or date strings,
    as UTC timestamps; the first value that is neither raises, naming its line."""
    import pandas as pd

    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all():
        unit = "ms" if numbers.abs().max() > 1e11 else "s"
        return pd.to_datetime(numbers, unit=unit, utc=True)
    try:
        return pd.to_datetime(values, utc=True)
    except (ValueError, TypeError, OverflowError):
        try:
            parsed = pd.to_datetime(values, utc=True, format="mixed", errors="coerce")
        except (ValueError, TypeError, OverflowError):
            parsed = pd.Series(pd.NaT, index=values.index)
        bad = parsed.isna()
        line = int(bad.to_numpy().argmax()) + 2
        raise ValueError(
            f"{source}: time column {column!r} line {line} has {values[bad].iloc[0]!r}, "
            "which is neither epoch seconds nor a date"
        ) from None


def _metrics(raw: pd.DataFrame, profile: Profile, features: list[str], source: str):
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(index=raw.index)
    for name in features:
        column = profile.rename.get(name, name)
        values = pd.to_numeric(raw[column], errors="coerce").astype(float)
        if values.isna().any():  # ApacheJIT writes `fix` as True/False
            words = raw[column].astype(str).str.strip().str.lower()
            values = values.fillna(words.map({"true": 1.0, "false": 0.0}))
        bad = values.isna() | (values < 0)
        if bad.any():
            line = int(bad.to_numpy().argmax()) + 2
            raise ValueError(
                f"{source}: column {column!r} ({name}) line {line} has "
                f"{raw[column][bad].iloc[0]!r}; metrics must be numbers >= 0"
            )
        frame[name] = values.astype(float)
    if profile.normalised:
        nf = frame["nf"].clip(lower=1)
        lines = frame["lt"] * nf  # LT was normalised by NF, LA and LD by LT
        for name in ("la", "ld"):
            frame[name] = np.round(frame[name] * lines, 3)
        frame["lt"] = np.round(lines, 3)
        frame["nuc"] = np.round(frame["nuc"] * nf, 3)
        frame["age"] = frame["age"] / nf
        frame["entropy"] = frame["entropy"] * np.log2(nf)
    return frame


def to_risk_frame(
    raw: pd.DataFrame,
    *,
    source: str = "frame",
    label: str | None = None,
    time: str | None = None,
    columns_map: dict[str, str] | None = None,
    profile: str = "auto",
    group: str | None = "auto",
    require_time: bool = False,
) -> RiskDataset:
    """Validate a raw frame and bring it to warehouse names and units (see the module doc).

    `label`/`time` name the columns (default: the first of `LABEL_CANDIDATES` /
    `TIME_CANDIDATES` present); `group` names the repository/project column ("auto": the
    first of `GROUP_CANDIDATES` present; None or "none": do not use one).

    Raises:
        ValueError: missing metric columns (all listed), an unknown profile, labels that are
            not 0/1, negative or non-numeric metrics, unparsable times, or (with
            `require_time`) no time column.
    """
    import pandas as pd

    if profile not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILE_NAMES)}")
    columns = [str(c) for c in raw.columns]
    chosen = PROFILES[detect_profile(columns) if profile == "auto" else profile]
    chosen = Profile(
        chosen.name,
        {**chosen.rename, **(columns_map or {})},
        tuple(a for a in chosen.absent if a not in (columns_map or {})),
        chosen.normalised,
    )
    unknown = sorted(set(columns_map or {}) - set(FEATURES))
    if unknown:
        raise ValueError(f"--columns-map names {unknown}, which are not metrics of {FEATURES}")
    features = [f for f in FEATURES if f not in chosen.absent]
    missing = [
        f"{f} (as {chosen.rename[f]!r})" if f in chosen.rename else f
        for f in features
        if chosen.rename.get(f, f) not in columns
    ]
    if missing:
        raise ValueError(
            f"{source}: missing metric column(s) {', '.join(missing)} "
            f"(profile {chosen.name}); map them with --columns-map new=old"
        )
    label_column = _pick(columns, label, LABEL_CANDIDATES, "label")
    time_column: str | None = None
    try:
        time_column = _pick(columns, time, TIME_CANDIDATES, "time")
    except ValueError:
        if time or require_time:
            raise
    frame = _metrics(raw, chosen, features, source)
    frame[LABEL] = _labels(raw[label_column], label_column, source)
    if time_column:
        frame[TIME] = parse_times(raw[time_column], time_column, source)
    group_column = None if group in (None, "none") else group
    if group_column == "auto":
        group_column = next((c for c in GROUP_CANDIDATES if c in columns), None)
    elif group_column is not None and group_column not in columns:
        raise ValueError(f"group column {group_column!r} not found; the file has {columns}")
    if group_column:
        frame[GROUP] = raw[group_column].astype(str).to_numpy()
    id_column = next((c for c in ID_CANDIDATES if c in columns), None)
    if id_column:
        frame.index = pd.Index(raw[id_column].astype(str).to_numpy(), name=id_column)
    renames = {f: chosen.rename[f] for f in features if f in chosen.rename}
    return RiskDataset(
        frame,
        tuple(features),
        source,
        chosen.name,
        label_column,
        time_column,
        group_column,
        renames,
    )


def load_risk_csv(path: str | Path, **options: Any) -> RiskDataset:
    """Read a CSV and validate it with `to_risk_frame` (same keyword options)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        raw = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a readable CSV ({error})") from None
    return to_risk_frame(raw, source=str(path), **options)
