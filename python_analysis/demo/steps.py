"""The steps of ``python_analysis.demo_data.generate_demo``, one per part of the planted truth.

Every step takes the generator and the values it needs and returns what it builds (a few edit arrays in
place, and say so). The steps draw from the one generator in a fixed order, so ``generate_demo`` must call
them in the order it does: reordering two steps that draw changes every value after them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from python_analysis.demo_data import (
    _N_BLANK_DATE,
    _N_CONFLICTS,
    _N_OLDER_SNAPSHOT,
    _N_PERTURBED_QUARTERS,
    _N_SCORE_ZERO,
    _N_TWO_SUBSIDIARIES,
    _N_ZERO_TXN,
    _SEGMENTS_LOW_TO_HIGH,
    ANOMALY_RATE,
    CONFOUNDED_SEGMENT,
    CUSTOMERS_FILE,
    CUSTOMERS_PRECOMPUTED_FILE,
    EXACT_THRESHOLD_SEGMENT,
    LAST_DATE,
    LOPSIDED_SEGMENT,
    MAIN_SEGMENTATION_DATE,
    N_MONTHS,
    OLD_SEGMENTATION_DATE,
    SEGMENT_TARGET_RETENTION,
    SEGMENTS,
    SUBSIDIARIES,
    TRANSACTIONS_FILE,
    XSS_NAME,
    _amounts,
    _assign_segments,
    _draw_profiles,
    _fmt,
    _fmt_int,
    _lifecycle,
    _make_segment_lopsided,
    _pair_deviations,
    _plant_exact_threshold_pair,
    _point_in_time_behaviour,
    _Profiles,
    _redraw_q4_heavy,
    _scores,
    _seasonal_preference,
    _simulate_transactions,
)

# --------------------------------------------------------------------------------------------------------
# structural roles and behaviour
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Roles:
    """Disjoint structural roles (customer indices) drawn from one permutation."""

    zero_txn: np.ndarray  # customers with no transactions
    blank_date: np.ndarray  # customers whose record has a blank segmentation_date
    two_subs: np.ndarray  # customers with a record in two subsidiaries
    conflict: np.ndarray  # customers with a conflicting earlier copy of their record
    older_pool: np.ndarray  # candidates for an older snapshot (the eligible ones get one)
    plain: np.ndarray  # plain single-record customers (the only ones that may behave anomalously)


@dataclass(frozen=True, eq=False)
class Behaviour:
    """Everyone's drawn behaviour: activity profile, transactions (``sim``, edited in place by the
    planting steps), revenue segment and base score."""

    profiles: _Profiles
    older: np.ndarray  # customers that get an older snapshot record
    n_txn: np.ndarray
    sim: dict[str, np.ndarray]
    seg_level: np.ndarray  # index into _SEGMENTS_LOW_TO_HIGH
    segment: np.ndarray
    base_score: np.ndarray


def draw_structural_roles(rng: np.random.Generator, n: int) -> Roles:
    """Plant the structural roles: zero-transaction customers, blank dates, two subsidiaries, conflicting
    copies and the older-snapshot pool, disjoint, from one permutation of the ``n`` customers."""
    perm = rng.permutation(n)
    zero_txn = perm[:_N_ZERO_TXN]
    blank_date = perm[_N_ZERO_TXN : _N_ZERO_TXN + _N_BLANK_DATE]
    rest = perm[_N_ZERO_TXN + _N_BLANK_DATE :]
    two_subs = rest[:_N_TWO_SUBSIDIARIES]
    rest = rest[_N_TWO_SUBSIDIARIES:]
    conflict = rest[:_N_CONFLICTS]
    rest = rest[_N_CONFLICTS:]
    return Roles(
        zero_txn=zero_txn,
        blank_date=blank_date,
        two_subs=two_subs,
        conflict=conflict,
        older_pool=rest[: 3 * _N_OLDER_SNAPSHOT],
        plain=rest[3 * _N_OLDER_SNAPSHOT :],
    )


def _older_snapshot_customers(profiles: _Profiles, older_pool: np.ndarray) -> np.ndarray:
    """The first ``_N_OLDER_SNAPSHOT`` of the pool with history before 2024-12-31 and activity after it."""
    eligible = older_pool[(profiles.start_month[older_pool] <= 18) & (profiles.end_month[older_pool] == 29)]
    older = eligible[:_N_OLDER_SNAPSHOT]
    if len(older) < _N_OLDER_SNAPSHOT:  # pragma: no cover - guarded by the fixed seed
        raise RuntimeError("not enough customers eligible for an older snapshot")
    return older


def draw_behaviour(rng: np.random.Generator, n: int, roles: Roles) -> Behaviour:
    """Draw everyone's behaviour with the narrow amount spread (the anomalous customers are chosen later,
    per segment): profiles, transaction counts (zero for ``roles.zero_txn``, at least 4 for the older
    snapshots), the transactions, the revenue segments and the base scores."""
    none_anomalous = np.zeros(n, dtype=bool)
    profiles = _draw_profiles(rng, n, none_anomalous)
    older = _older_snapshot_customers(profiles, roles.older_pool)
    active_months = (profiles.end_month - profiles.start_month + 1).astype(float)
    n_txn = np.maximum(rng.poisson(profiles.rate * active_months).astype(np.int64), 1)
    n_txn[older] = np.maximum(n_txn[older], 4)
    n_txn[roles.zero_txn] = 0
    sim = _simulate_transactions(rng, profiles, none_anomalous, n_txn)
    revenue = np.bincount(sim["cust"], weights=sim["amount"], minlength=n)
    seg_level = _assign_segments(rng, revenue)
    segment = np.array(_SEGMENTS_LOW_TO_HIGH)[seg_level]
    base_score = _scores(rng, revenue)
    return Behaviour(profiles, older, n_txn, sim, seg_level, segment, base_score)


def plant_anomalous_behaviour(rng: np.random.Generator, roles: Roles, beh: Behaviour) -> np.ndarray:
    """Plant the within-segment effect (transaction stability): in each segment, an even number of plain
    single-record customers (``ANOMALY_RATE``), drawn uniformly, get the wide amount spread; their amounts
    are recomputed from the same normal draws, their activity is unchanged. Edits ``beh.sim`` in place;
    returns the anomalous-customer mask."""
    n = len(beh.segment)
    plain = np.zeros(n, dtype=bool)
    plain[roles.plain] = True
    anomalous = np.zeros(n, dtype=bool)
    for seg in SEGMENTS:
        members = np.flatnonzero(plain & (beh.segment == seg))
        take = 2 * int(round(ANOMALY_RATE[seg] * np.sum(beh.segment == seg) / 2))
        anomalous[rng.choice(members, take, replace=False)] = True
    sim = beh.sim
    on = anomalous[sim["cust"]]
    sim["amount"][on], sim["profit"][on] = _amounts(
        beh.profiles.mean_amount[sim["cust"][on]], beh.profiles.wide_sigma[sim["cust"][on]], sim["z"][on],
        sim["refund"][on], sim["margin"][on],
    )
    return anomalous


def plant_confounder(rng: np.random.Generator, beh: Behaviour, anomalous: np.ndarray) -> None:
    """Plant the confounder (seasonal preference): every ``CONFOUNDED_SEGMENT`` customer's dates are redrawn
    Q4-heavy (amounts unchanged). Then pin the data's latest transaction date to ``LAST_DATE`` on a steady
    customer outside that segment. Edits ``beh.sim`` in place."""
    sim = beh.sim
    _redraw_q4_heavy(rng, beh.profiles, sim, beh.segment[sim["cust"]] == CONFOUNDED_SEGMENT)
    steady_full = np.flatnonzero(
        ~anomalous
        & (beh.profiles.end_month == N_MONTHS - 1)
        & (beh.n_txn > 0)
        & (beh.segment != CONFOUNDED_SEGMENT)
    )
    sim["date"][np.flatnonzero(sim["cust"] == steady_full[0])[0]] = LAST_DATE


def plant_xss_name(rng: np.random.Generator, names: np.ndarray, anomalous: np.ndarray) -> None:
    """Give ``XSS_NAME`` (the HTML-escaping test) to a random anomalous customer. Edits ``names`` in place
    (``give_xss_name_to_top_anomaly`` moves it later)."""
    names[rng.choice(np.flatnonzero(anomalous))] = XSS_NAME


# --------------------------------------------------------------------------------------------------------
# customer records
# --------------------------------------------------------------------------------------------------------


def build_customer_records(
    rng: np.random.Generator, roles: Roles, beh: Behaviour, anomalous: np.ndarray
) -> pd.DataFrame:
    """Plant the customer records: one main record per customer (blank date for ``roles.blank_date``), a
    lower-subsidiary record that ``latest`` drops for ``roles.two_subs``, an older snapshot for
    ``beh.older`` and a conflicting earlier copy for ``roles.conflict`` (the first also disagrees on the
    segment). Columns ``cust, sub, date, segment, kept, role, planted`` (planted: a kept anomalous record)."""
    n = len(beh.segment)
    segment, home = beh.segment, rng.integers(0, 5, n)
    rows: dict[str, list] = {"cust": [], "sub": [], "date": [], "segment": [], "kept": [], "role": []}

    def add(c: int, sub: int, date: str, seg: str, kept: bool, role: str) -> None:
        for key, value in zip(rows, (int(c), int(sub), date, str(seg), kept, role), strict=True):
            rows[key].append(value)

    blank_set, two_set = set(roles.blank_date.tolist()), set(roles.two_subs.tolist())
    other_sub = (home + rng.integers(1, 5, n)) % 5
    for c in range(n):
        date = "" if c in blank_set else MAIN_SEGMENTATION_DATE
        if c in two_set:
            add(c, max(home[c], other_sub[c]), date, segment[c], True, "main")
            add(c, min(home[c], other_sub[c]), date, segment[c], False, "lower_subsidiary")
        else:
            add(c, home[c], date, segment[c], True, "main")
    for c in beh.older:
        add(c, home[c], OLD_SEGMENTATION_DATE, segment[c], False, "older_snapshot")
    for j, c in enumerate(roles.conflict):
        seg = segment[c]
        if j == 0:  # one conflicting copy disagrees on the segment too
            lvl = beh.seg_level[c]
            seg = _SEGMENTS_LOW_TO_HIGH[lvl - 1 if lvl > 0 else 1]
        add(c, home[c], MAIN_SEGMENTATION_DATE, seg, False, "conflict_earlier_copy")
    recs = pd.DataFrame(rows)
    recs["planted"] = False
    recs.loc[recs["kept"], "planted"] = anomalous[recs.loc[recs["kept"], "cust"].to_numpy()]
    return recs


# --------------------------------------------------------------------------------------------------------
# record values: retention, scores, the lopsided segment and the threshold pair
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RecordValues:
    """Per-record values, aligned with the records frame (edited in place by the planting steps)."""

    retention: np.ndarray
    is_boundary: np.ndarray
    is_anomaly: np.ndarray


def draw_retention(rng: np.random.Generator, recs: pd.DataFrame) -> RecordValues:
    """Plant the retention values: per (segment, kept) group, symmetric pairs ``(m + e, m - e)`` around the
    segment target ``m`` (anomalies first, with one boundary pair just outside and one just inside the
    threshold in the kept group), so both grains' segment mean is exactly ``m``."""
    n_rec = len(recs)
    values = RecordValues(np.full(n_rec, np.nan), np.zeros(n_rec, dtype=bool), np.zeros(n_rec, dtype=bool))
    for seg in SEGMENTS:
        m = SEGMENT_TARGET_RETENTION[seg]
        for kept in (True, False):
            grp = recs.index[(recs["segment"] == seg) & (recs["kept"] == kept)].to_numpy()
            anom = rng.permutation(grp[recs.loc[grp, "planted"].to_numpy()])
            norm = rng.permutation(grp[~recs.loc[grp, "planted"].to_numpy()])
            out_pairs = 1 if kept and len(anom) >= 2 else 0
            in_pairs = 1 if kept and len(norm) >= 2 else 0
            dev, bnd, ano = _pair_deviations(rng, len(anom), len(norm), m, out_pairs, in_pairs)
            order = np.concatenate([anom, norm]).astype(np.int64)
            values.retention[order] = np.round(m + dev, 4)
            values.is_boundary[order] = bnd
            values.is_anomaly[order] = ano
    return values


def give_xss_name_to_top_anomaly(names: np.ndarray, recs: pd.DataFrame, values: RecordValues) -> None:
    """Swap ``XSS_NAME`` onto the customer of the most extreme planted anomaly, so it heads the report's
    anomaly list. Edits ``names`` in place; draws nothing."""
    deviation = np.abs(values.retention - recs["segment"].map(SEGMENT_TARGET_RETENTION).to_numpy())
    top = int(np.argmax(np.where(values.is_anomaly, deviation, -1.0)))
    top_customer = int(recs["cust"].to_numpy()[top])
    xss_owner = int(np.flatnonzero(names == XSS_NAME)[0])
    names[xss_owner], names[top_customer] = names[top_customer], names[xss_owner]


def draw_scores(
    rng: np.random.Generator, recs: pd.DataFrame, base_score: np.ndarray, is_boundary: np.ndarray
) -> np.ndarray:
    """Per-record scores: the customer's base score, lowered a little on older snapshots, moved 5..14 on
    conflicting copies, +/-2 on lower-subsidiary records, and ``_N_SCORE_ZERO`` plain main records at 0."""
    score = base_score[recs["cust"].to_numpy()].copy()
    role = recs["role"].to_numpy()
    older_mask = role == "older_snapshot"
    score[older_mask] = np.clip(score[older_mask] - rng.integers(0, 8, older_mask.sum()), 1, 100)
    conf_mask = role == "conflict_earlier_copy"
    delta = rng.integers(5, 15, conf_mask.sum()) * np.where(rng.random(conf_mask.sum()) < 0.5, -1, 1)
    score[conf_mask] = np.clip(score[conf_mask] + delta, 1, 100)
    lower_mask = role == "lower_subsidiary"
    score[lower_mask] = np.clip(score[lower_mask] + rng.integers(-2, 3, lower_mask.sum()), 1, 100)
    zero_candidates = np.flatnonzero((role == "main") & ~recs["planted"].to_numpy() & ~is_boundary)
    score[rng.choice(zero_candidates, _N_SCORE_ZERO, replace=False)] = 0
    return score


def plant_lopsided_segment_and_threshold_pair(recs: pd.DataFrame, values: RecordValues) -> None:
    """Make ``LOPSIDED_SEGMENT``'s normal records lopsided (median above the mean) in both grains, and move
    one normal pair of ``EXACT_THRESHOLD_SEGMENT`` (kept records) to exactly the threshold. Both keep every
    group's mean. Edits ``values`` in place; draws nothing."""
    normal = ~values.is_anomaly & ~values.is_boundary
    segment_of = recs["segment"].to_numpy()
    kept_of = recs["kept"].to_numpy(dtype=bool)
    _make_segment_lopsided(
        values.retention,
        [np.flatnonzero((segment_of == LOPSIDED_SEGMENT) & (kept_of == kept)) for kept in (True, False)],
        normal,
        SEGMENT_TARGET_RETENTION[LOPSIDED_SEGMENT],
    )
    _plant_exact_threshold_pair(
        values.retention,
        values.is_boundary,
        np.flatnonzero((segment_of == EXACT_THRESHOLD_SEGMENT) & kept_of),
        normal,
        SEGMENT_TARGET_RETENTION[EXACT_THRESHOLD_SEGMENT],
    )


# --------------------------------------------------------------------------------------------------------
# file order and the customers file
# --------------------------------------------------------------------------------------------------------


def draw_file_order(rng: np.random.Generator, recs: pd.DataFrame, conflict: np.ndarray) -> np.ndarray:
    """A random file order of the records in which each conflicting earlier copy comes before the main
    record it conflicts with (so ``latest`` drops the copy). Returns the record indices in file order."""
    n_rec = len(recs)
    order = rng.permutation(n_rec)
    pos = np.empty(n_rec, dtype=np.int64)
    pos[order] = np.arange(n_rec)
    for c in conflict:
        idx = recs.index[(recs["cust"] == c) & (recs["date"] == MAIN_SEGMENTATION_DATE)].to_numpy()
        early = idx[recs.loc[idx, "role"].to_numpy() == "conflict_earlier_copy"][0]
        late = idx[recs.loc[idx, "role"].to_numpy() == "main"][0]
        if pos[early] > pos[late]:
            pos[early], pos[late] = pos[late], pos[early]
    return np.argsort(pos)


def clean_customer_rows(
    recs: pd.DataFrame, values: RecordValues, score: np.ndarray, cust_ids: np.ndarray, names: np.ndarray
) -> pd.DataFrame:
    """The clean customer rows as CSV text, in the records' order."""
    cust = recs["cust"].to_numpy()
    return pd.DataFrame(
        {
            "customer_id": cust_ids[cust],
            "customer_name": names[cust].astype(str),
            "subsidiary_id": np.array(SUBSIDIARIES)[recs["sub"].to_numpy()],
            "segmentation_date": recs["date"].to_numpy(),
            "profitability_segment": recs["segment"].to_numpy(),
            "retention_probability": _fmt(values.retention, 4),
            "comprehensive_customer_score": _fmt_int(score),
        }
    )


@dataclass(frozen=True, eq=False)
class CustomersFile:
    """The customers file text (bad rows included) and where its clean and bad rows landed (1-based)."""

    customers: pd.DataFrame
    clean_row_number: np.ndarray
    bad_row_number: np.ndarray
    bad_reasons: list[str]


def insert_bad_customers(rng: np.random.Generator, clean: pd.DataFrame, n: int) -> CustomersFile:
    """Plant three bad customer rows (blank id, a percentage retention, a blank retention; the two ids after
    the ``n`` customers) at random positions among the clean rows."""
    n_rec = len(clean)
    bad_customers = pd.DataFrame(
        {
            "customer_id": ["", f"C{n + 1:06d}", f"C{n + 2:06d}"],
            "customer_name": ["Unknown customer", f"Customer {n + 1:04d}", f"Customer {n + 2:04d}"],
            "subsidiary_id": ["S02", "S01", "S04"],
            "segmentation_date": [MAIN_SEGMENTATION_DATE] * 3,
            "profitability_segment": ["Standard", "Growing", "High Value"],
            "retention_probability": ["0.5000", "45", ""],
            "comprehensive_customer_score": ["50", "61", "72"],
        }
    )
    bad_reasons = [
        "blank customer_id",
        "retention_probability 45 is outside [0, 1] (a percentage)",
        "blank retention_probability",
    ]
    insert_after = np.sort(rng.choice(np.arange(5, n_rec - 5), 3, replace=False))
    customers, row_number = _insert_after(clean, bad_customers, insert_after)
    return CustomersFile(customers, row_number[:n_rec], row_number[n_rec:], bad_reasons)


def _insert_after(
    rows: pd.DataFrame, extra: pd.DataFrame, after: np.ndarray
) -> tuple[pd.DataFrame, np.ndarray]:
    """``rows`` with ``extra[i]`` placed right after row ``after[i]`` (stable). Returns the combined frame and
    the 1-based row number of every row of ``rows`` then ``extra`` in it."""
    key = np.concatenate([2 * np.arange(len(rows)), 2 * after + 1])
    file_order = np.argsort(key, kind="stable")
    combined = pd.concat([rows, extra], ignore_index=True).iloc[file_order].reset_index(drop=True)
    row_number = np.empty(len(key), dtype=np.int64)
    row_number[file_order] = np.arange(1, len(key) + 1)
    return combined, row_number


def _in_file_order(values: np.ndarray, row_number: np.ndarray) -> np.ndarray:
    """``values`` (one per row, in ``_insert_after``'s input order) rearranged into file order."""
    out = np.empty_like(values)
    out[row_number - 1] = values
    return out


# --------------------------------------------------------------------------------------------------------
# transactions
# --------------------------------------------------------------------------------------------------------


def clean_transactions(sim: dict[str, np.ndarray], cust_ids: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The simulated transactions in file order (by date, then customer): typed (``customer_id, date,
    amount, profit``, for the precomputed variant) and as CSV text."""
    txn_order = np.lexsort((np.arange(len(sim["cust"])), sim["cust"], sim["date"]))
    t_cust = sim["cust"][txn_order]
    t_date = sim["date"][txn_order]
    t_amount = sim["amount"][txn_order]
    t_profit = sim["profit"][txn_order]
    typed = pd.DataFrame(
        {
            "customer_id": cust_ids[t_cust],
            "date": t_date.astype("datetime64[s]"),
            "amount": t_amount,
            "profit": t_profit,
        }
    )
    text = pd.DataFrame(
        {
            "customer_id": cust_ids[t_cust],
            "transaction_date": np.datetime_as_string(t_date, unit="D"),
            "amount": _fmt(t_amount, 2),
            "profit": _fmt(t_profit, 2),
        }
    )
    return typed, text


def insert_bad_transactions(
    rng: np.random.Generator, t_text: pd.DataFrame, cust_ids: np.ndarray, n_txn: np.ndarray
) -> tuple[pd.DataFrame, np.ndarray]:
    """Plant 3 orphan transactions (unknown customer ids) and 1 with amount ``n/a``, each placed after a
    random clean row whose date it copies; number all rows ``transaction_id`` in file order. Returns the
    transactions and each row's kind (``clean``, ``orphan``, ``n/a``)."""
    n_clean_txn = len(t_text)
    ins = np.sort(rng.choice(np.arange(100, n_clean_txn - 100), 4, replace=False))
    bad_kind = rng.permutation(np.array(["orphan", "orphan", "orphan", "n/a"]))
    orphan_ids = iter([f"C{9900 + j:06d}" for j in (1, 2, 3)])
    bad_txn_rows = []
    for p, kind in zip(ins, bad_kind, strict=True):
        amt = round(float(rng.uniform(20, 400)), 2)
        prof = round(amt * 0.2, 2)
        if kind == "orphan":
            bad_txn_rows.append(
                (next(orphan_ids), t_text.at[p, "transaction_date"], f"{amt:.2f}", f"{prof:.2f}")
            )
        else:
            c = cust_ids[rng.choice(np.flatnonzero(n_txn > 0))]
            bad_txn_rows.append((c, t_text.at[p, "transaction_date"], "n/a", f"{prof:.2f}"))
    bad_txn = pd.DataFrame(bad_txn_rows, columns=["customer_id", "transaction_date", "amount", "profit"])
    txn, row_number = _insert_after(t_text, bad_txn, ins)
    kinds = _in_file_order(np.concatenate([np.array(["clean"] * n_clean_txn), bad_kind]), row_number)
    width = max(7, len(str(len(txn))))
    txn.insert(0, "transaction_id", [f"T{i:0{width}d}" for i in range(1, len(txn) + 1)])
    return txn, kinds


@dataclass(frozen=True, eq=False)
class TransactionsFile:
    """The transactions file text (bad rows and duplicates included) and its bad rows (1-based)."""

    transactions: pd.DataFrame
    bad_row_number: np.ndarray  # orphans and n/a amounts
    bad_reasons: list[str]
    dup_row_number: np.ndarray  # the duplicate copies
    dup_reasons: list[str]


def insert_duplicate_transactions(
    rng: np.random.Generator, txn: pd.DataFrame, kinds: np.ndarray
) -> TransactionsFile:
    """Plant two duplicate ``transaction_id``s: copies of two clean rows placed 50..499 rows after their
    originals, the second with a different amount (a conflict), the first an exact copy."""
    clean_pos = np.flatnonzero(kinds == "clean")
    originals = np.sort(rng.choice(clean_pos[:-600], 2, replace=False))
    dup_rows = txn.iloc[originals].copy()
    dup_reasons = []
    for j, p in enumerate(originals):
        if j == 1:  # the second copy conflicts with its original
            new_amt = float(dup_rows.iloc[j]["amount"]) + 10.0
            dup_rows.iloc[j, dup_rows.columns.get_loc("amount")] = f"{new_amt:.2f}"
            dup_reasons.append(f"duplicate transaction_id (different amount than data row {p + 1})")
        else:
            dup_reasons.append(f"duplicate transaction_id (exact copy of data row {p + 1})")
    dup_after = originals + rng.integers(50, 500, 2)
    transactions, row_number = _insert_after(txn, dup_rows, dup_after)
    all_kinds = _in_file_order(np.concatenate([kinds, np.array(["duplicate", "duplicate"])]), row_number)
    bad_numbers = np.flatnonzero(np.isin(all_kinds, ["orphan", "n/a"])) + 1
    bad_reasons = [
        "orphan: customer_id not in customers"
        if all_kinds[r - 1] == "orphan"
        else "amount 'n/a' is not a number"
        for r in bad_numbers
    ]
    return TransactionsFile(transactions, bad_numbers, bad_reasons, row_number[len(txn) :], dup_reasons)


# --------------------------------------------------------------------------------------------------------
# precomputed variant
# --------------------------------------------------------------------------------------------------------


def point_in_time_behaviour(customers: pd.DataFrame, clean_txn: pd.DataFrame) -> pd.DataFrame:
    """Behaviour per customers-file row from the clean transactions up to the row's segmentation date (the
    latest transaction date for a blank date)."""
    as_of_text = customers["segmentation_date"].to_numpy()
    latest_txn = clean_txn["date"].max()
    as_of = pd.to_datetime(pd.Series(as_of_text).replace("", np.nan)).fillna(latest_txn).to_numpy()
    return _point_in_time_behaviour(customers["customer_id"].to_numpy(), as_of, clean_txn)


def perturb_quarters(
    rng: np.random.Generator, q_true: np.ndarray, clean_row_number: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Plant ``_N_PERTURBED_QUARTERS`` clean rows with transactions whose written quarter counts disagree
    with the transactions (one quarter -1 or +1..2). Returns the written counts and the perturbed file rows
    (0-based)."""
    q_written = q_true.copy()
    clean_file_rows = clean_row_number - 1
    candidates = np.sort(clean_file_rows[counts[clean_file_rows] > 0])
    perturbed = np.sort(rng.choice(candidates, _N_PERTURBED_QUARTERS, replace=False))
    for r in perturbed:
        qi = int(rng.integers(0, 4))
        if q_written[r, qi] > 0 and rng.random() < 0.5:
            q_written[r, qi] -= 1
        else:
            q_written[r, qi] += int(rng.integers(1, 3))
    return q_written, perturbed


def precomputed_variant(
    rng: np.random.Generator, customers: pd.DataFrame, clean_txn: pd.DataFrame, clean_row_number: np.ndarray
) -> tuple[pd.DataFrame, np.ndarray]:
    """The precomputed variant: the customers file plus point-in-time behaviour columns, with the lifecycle
    and seasonal labels computed from the true quarter counts and some written quarter counts perturbed
    (``perturb_quarters``). Returns the file text and the perturbed file rows (0-based)."""
    beh = point_in_time_behaviour(customers, clean_txn)
    q_true = beh[["q1", "q2", "q3", "q4"]].to_numpy()
    lifecycle = _lifecycle(
        beh["transaction_count"].to_numpy(),
        beh["customer_age_days"].to_numpy(),
        beh["recency_days"].to_numpy(),
    )
    seasonal = _seasonal_preference(q_true)
    counts = beh["transaction_count"].to_numpy()
    q_written, perturbed = perturb_quarters(rng, q_true, clean_row_number, counts)
    pre = customers.copy()
    pre["lifecycle_stage"] = lifecycle
    pre["seasonal_preference"] = seasonal
    pre["total_revenue"] = _fmt(beh["total_revenue"].to_numpy(), 2)
    pre["net_profit"] = _fmt(beh["net_profit"].to_numpy(), 2)
    pre["transaction_count"] = _fmt_int(beh["transaction_count"].to_numpy())
    pre["avg_transactions_per_month"] = _fmt(beh["avg_transactions_per_month"].to_numpy(), 4)
    pre["transaction_value_volatility"] = _fmt(beh["transaction_value_volatility"].to_numpy(), 4)
    for qi in range(4):
        pre[f"q{qi + 1}_transactions"] = _fmt_int(q_written[:, qi])
    pre["customer_age_days"] = _fmt_int(beh["customer_age_days"].to_numpy())
    return pre.astype(str), perturbed


# --------------------------------------------------------------------------------------------------------
# ground truth
# --------------------------------------------------------------------------------------------------------


def ground_truth(
    clean: pd.DataFrame,
    recs: pd.DataFrame,
    values: RecordValues,
    clean_row_number: np.ndarray,
    perturbed: np.ndarray,
) -> pd.DataFrame:
    """The typed ground truth: one row per clean customer record (in file order) with its planted retention,
    anomaly and boundary flags, whether ``latest`` keeps it and whether its quarter counts were perturbed."""
    perturbed_set = set((perturbed + 1).tolist())
    planted = pd.DataFrame(
        {
            "customer_id": clean["customer_id"].to_numpy(),
            "subsidiary_id": clean["subsidiary_id"].to_numpy(),
            "segmentation_date": pd.to_datetime(pd.Series(clean["segmentation_date"]).replace("", np.nan)),
            "source_row_number": clean_row_number,
            "profitability_segment": clean["profitability_segment"].to_numpy(),
            "retention_probability": values.retention,
            "is_planted_anomaly": values.is_anomaly,
            "is_boundary": values.is_boundary,
            "kept_in_latest": recs["kept"].to_numpy(dtype=bool),
            "quarters_perturbed": [int(r) in perturbed_set for r in clean_row_number],
        }
    )
    return planted.sort_values("source_row_number", kind="stable").reset_index(drop=True)


def bad_rows_table(cust_file: CustomersFile, txn_file: TransactionsFile) -> pd.DataFrame:
    """Every planted bad row: ``file``, ``source_row_number`` (1-based data row), ``reason``. The customers'
    bad rows sit at the same rows of the precomputed variant."""
    n_cust_bad = len(cust_file.bad_reasons)
    n_txn_bad = len(txn_file.bad_reasons) + len(txn_file.dup_reasons)
    bad_rows = pd.DataFrame(
        {
            "file": [CUSTOMERS_FILE] * n_cust_bad
            + [CUSTOMERS_PRECOMPUTED_FILE] * n_cust_bad
            + [TRANSACTIONS_FILE] * n_txn_bad,
            "source_row_number": np.concatenate(
                [
                    cust_file.bad_row_number,
                    cust_file.bad_row_number,
                    txn_file.bad_row_number,
                    txn_file.dup_row_number,
                ]
            ).astype(np.int64),
            "reason": cust_file.bad_reasons
            + cust_file.bad_reasons
            + txn_file.bad_reasons
            + txn_file.dup_reasons,
        }
    )
    return bad_rows.sort_values(["file", "source_row_number"], kind="stable").reset_index(drop=True)
