"""homo_lr@1.0.0 — FATE 2.x ``homo_lr`` / 1.x ``HomoLR``: horizontal LR over dropout-tolerant secure aggregation.

FedAvg of logistic regression in which the arbiter only ever sees masked client updates.

Roles: the guest and each host are *clients* holding rows with the same features (and labels); the
arbiter aggregates. Per aggregation round (after every epoch in FATE 2.x, every ``aggregate_iters``
epochs in 1.x):

1. each client trains locally (mini-batch gradient descent on the mean log loss, the optimizer of
   its dialect: torch's rules for 2.x, FATE 1.x's for 1.x; see :mod:`._homo_lr_params`);
2. it encodes ``[n·w, n·loss, n]`` (``n`` its row count, ``w`` coefficients and intercept) as
   fixed-point integers mod ``2**64`` and takes part in one round of secure aggregation
   (:mod:`._secagg`, Bonawitz et al.): the arbiter receives only masked vectors and learns only
   their sum, even when a client disappears mid-round;
3. the arbiter divides by ``Σ n`` — the sample-weighted mean FATE 2.x's FedAvg computes — and
   sends the averaged model and loss back; in 1.x it also decides convergence (``early_stop``).

Dropouts: in every step the arbiter waits for the first message with the federation timeout, then
at most ``secure_aggregate_param.timeout`` seconds for the rest; who has not answered is treated as
dropped (told so, if still listening) and leaves training for good. The round completes with the
others as long as at least ``threshold`` of them remain; otherwise every party fails with an error
naming the round and the count.

What crosses: client → arbiter: public keys, sealed shares (opaque to the arbiter), masked vectors,
and in the last step either share kind per client; arbiter → client: rosters, relayed sealed
shares, the averaged model and loss. No raw rows, labels, or individual models leave a client.

Outputs: each client saves its (identical) averaged model and its predictions on its own training
rows (``id, label, predict_result, predict_score, predict_detail, type``); the arbiter saves the
training facts. Predict needs no federation: each client scores its own rows.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn

import numpy as np

from fate_airflow.components import _secagg
from fate_airflow.components._frames import binary_predictions, feature_matrix, label_vector
from fate_airflow.components._homo_lr_params import (
    HomoLRConfig,
    LocalOptimizer,
    initial_weights,
    make_optimizer,
    read_homo_config,
)
from fate_airflow.components.context import (
    PREDICT_KEYS,
    TEST_OUT_KEYS,
    TRAIN_OUT_KEYS,
    FateComponent,
    TaskContext,
)
from fate_airflow.core.errors import ComponentError, FederationError, FederationTimeout
from fate_airflow.core.types import Party
from fate_airflow.federation.api import Payload
from fate_airflow.storage.table import Table
from fate_airflow.tracking.model_store import StoredModel

#: Seconds one pass over the parties still awaited may take while the arbiter gathers a step.
_POLL_PASS = 0.3
#: Settings every client must agree on (the arbiter checks them before the first round).
_AGREED = (
    "features",
    "header_digest",
    "epochs",
    "aggregate_every",
    "threshold",
    "precision",
    "fit_intercept",
    "dialect",
    "early_stop",
    "tol",
)
_FIELD_OF = {
    "threshold": "secure_aggregate_param.threshold",
    "precision": "secure_aggregate_param.precision",
    "epochs": "epochs / max_iter",
    "aggregate_every": "aggregate_iters",
    "fit_intercept": "init_param.fit_intercept",
    "features": "the feature columns",
    "header_digest": "the feature columns",
}


def party_label(party: Party) -> str:
    """A party's id in secure-aggregation rosters: ``role:party_id``."""
    return f"{party.role}:{party.party_id}"


def aggregation_epochs(epochs: int, every: int) -> list[int]:
    """The epochs after which the clients aggregate (every ``every``-th, and the last)."""
    return [e for e in range(epochs) if (e + 1) % every == 0 or e == epochs - 1]


def _session(ctx: TaskContext) -> str:
    r = ctx.request
    return f"{r.job_id}|{r.task_name}|{r.task_version}"


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -500, 500))), dtype=np.float64)


def _header_digest(header: Sequence[str]) -> bytes:
    return hashlib.sha256("\n".join(header).encode("utf-8")).digest()


class HomoLR(FateComponent):
    """Horizontal logistic regression (guest and hosts are clients, the arbiter aggregates)."""

    roles: ClassVar[tuple[str, ...]] = ("guest", "host", "arbiter")

    def execute(self, ctx: TaskContext) -> None:
        """Train, or predict with a stored model."""
        if len(ctx.parties_of("guest")) > 1:
            raise ComponentError(f"{ctx.where}: homo LR takes at most one guest")
        if ctx.role == "arbiter" and ctx.stage == "predict":
            ctx.mark_pass("the arbiter has nothing to do in predict")
            return
        ctx.refuse_warm_start("homo LR", "homo_lr")
        model = ctx.input_model()
        if ctx.predicts(model):
            self._predict(ctx, model)
            return
        clients = _clients(ctx)
        if len(clients) < 2:
            raise ComponentError(
                f"{ctx.where}: homo LR needs at least two clients (guest and hosts) to aggregate securely"
            )
        if len(ctx.parties_of("arbiter")) != 1:
            raise ComponentError(f"{ctx.where}: homo LR training needs exactly one arbiter")
        cfg = read_homo_config(ctx.params, ctx.request.component)
        ctx.note_warnings(cfg.warnings)
        if ctx.role == "arbiter":
            _Arbiter(ctx, cfg, clients).run()
            return
        if ctx.has_input(("validate_data",)):
            msg = "validate_data is not used: validation during training is not implemented"
            ctx.warning("%s", msg)
            ctx.summary["warnings"].append(msg)
        table = ctx.training_table()
        _Client(ctx, cfg, clients, table).run()

    def _predict(self, ctx: TaskContext, model: StoredModel | None) -> None:
        if ctx.role == "arbiter":
            ctx.mark_pass("the arbiter has nothing to do in predict")
            return
        if model is None:
            raise ComponentError(f"{ctx.where}: predict needs the trained model (model input)")
        table = ctx.input_table(PREDICT_KEYS)
        if table is None:
            raise ComponentError(f"{ctx.where}: predict needs data (test_data)")
        header = [str(h) for h in model.params["header"]]
        x = feature_matrix(table, ctx.where, header)
        w = np.asarray(model.arrays["weights"], dtype=np.float64)
        prob = _sigmoid(x @ w + float(model.params.get("intercept", 0.0)))
        threshold = ctx.params.number(
            "threshold", "predict_param.threshold", default=float(model.params.get("threshold", 0.5))
        )
        ctx.save_data(binary_predictions(table, prob, threshold, "predict"), TEST_OUT_KEYS)
        ctx.summary.update({"rows": len(x), "threshold": threshold})
        ctx.info("predict: %d rows scored locally", len(x))


def _clients(ctx: TaskContext) -> list[Party]:
    return [*ctx.parties_of("guest"), *ctx.parties_of("host")]


# ---------------------------------------------------------------------------- client


@dataclass(frozen=True)
class _Aggregate:
    weights: np.ndarray
    loss: float
    stop: bool
    converged: bool
    clients: int


class _Client:
    def __init__(self, ctx: TaskContext, cfg: HomoLRConfig, clients: list[Party], table: Table) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.clients = clients
        self.table = table
        self.arbiter = ctx.parties_of("arbiter")[0]
        self.me = party_label(ctx.local)
        self.x = feature_matrix(table, ctx.where)
        y = label_vector(table, ctx.where)
        classes = set(np.unique(y).tolist())
        if not classes <= {0.0, 1.0} and not classes <= {-1.0, 1.0}:
            raise ComponentError(
                f"{ctx.where}: the native homo LR is binary (labels 0/1); got {sorted(classes)[:10]} "
                "(multi-class ovr is not implemented)"
            )
        self.y = (y > 0).astype(np.float64)
        self.threshold = cfg.secagg.threshold_for(len(clients), ctx.where)

    def _expect(self, name: str, tag: str) -> dict[str, Any]:
        msg = self.ctx.get_one(name, tag, self.arbiter)
        if not isinstance(msg, dict):
            raise ComponentError(f"{self.ctx.where}: malformed {name!r} from the arbiter")
        if "error" in msg:
            raise ComponentError(f"{self.ctx.where}: the arbiter stopped training: {msg['error']}")
        return msg

    def run(self) -> None:
        ctx, cfg = self.ctx, self.cfg
        n, f = self.x.shape
        header = list(self.table.meta.feature_columns)
        setup = {
            "features": f,
            "header_digest": _header_digest(header),
            "epochs": cfg.epochs,
            "aggregate_every": cfg.aggregate_every,
            "threshold": self.threshold,
            "precision": cfg.secagg.precision,
            "fit_intercept": cfg.fit_intercept,
            "dialect": cfg.dialect,
            "early_stop": cfg.early_stop,
            "tol": cfg.tol,
        }
        ctx.remote(setup, "homo_lr_setup", "0", [self.arbiter])
        self._expect("homo_lr_setup_ack", "0")
        # The same at every client, so all start from one model (as after a first aggregation).
        seed = ctx.training_seed(cfg.random_seed)
        w = initial_weights(cfg, f, np.random.default_rng(seed))
        # Every client shuffles differently, and the same way on every run.
        order_rng = np.random.default_rng(
            [seed, int.from_bytes(hashlib.sha256(self.me.encode()).digest()[:8])]
        )
        opt = make_optimizer(cfg, len(w))
        batch = n if cfg.batch_size is None or cfg.batch_size >= n else cfg.batch_size
        ctx.info(
            "training: %d rows, %d features, %d clients, threshold %d, batch %d, optimizer %s (%s), lr %g, %s",
            n,
            f,
            len(self.clients),
            self.threshold,
            batch,
            cfg.optimizer,
            cfg.dialect,
            cfg.learning_rate,
            f"{cfg.penalty} alpha {cfg.alpha}" if cfg.penalty else "no penalty",
        )
        agg_after = set(aggregation_epochs(cfg.epochs, cfg.aggregate_every))
        losses: list[float] = []
        local_losses: list[float] = []
        round_losses: list[float] = []
        rounds = 0
        epochs_run = 0
        converged = False
        for epoch in range(cfg.epochs):
            ctx.check_abort()
            opt.start_epoch(epoch)
            w, loss = self._epoch(w, opt, order_rng, batch)
            epochs_run = epoch + 1
            local_losses.append(loss)
            round_losses.append(loss)
            if epoch not in agg_after:
                continue
            vec = np.concatenate([n * w, [n * float(np.mean(round_losses)), float(n)]])
            agg = self._aggregate(rounds, vec)
            round_losses = []
            rounds += 1
            w = agg.weights
            losses.append(agg.loss)
            ctx.info(
                "round %d (epoch %d): %d clients, aggregated loss %.6f",
                rounds - 1,
                epoch,
                agg.clients,
                agg.loss,
            )
            if agg.stop:
                converged = agg.converged
                break
        self._finish(w, losses, local_losses, rounds, epochs_run, converged, batch)

    def _epoch(
        self, w: np.ndarray, opt: LocalOptimizer, order_rng: np.random.Generator, batch: int
    ) -> tuple[np.ndarray, float]:
        cfg = self.cfg
        n, f = self.x.shape
        order = order_rng.permutation(n) if cfg.shuffle else np.arange(n)
        total = 0.0
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            xb, yb = self.x[idx], self.y[idx]
            z = xb @ w[:f] + (w[f] if cfg.fit_intercept else 0.0)
            # mean binary cross-entropy, computed stably from the logits
            total += (float(np.mean(np.logaddexp(0.0, z) - yb * z)) + opt.penalty_loss(w)) * len(idx)
            residual = _sigmoid(z) - yb
            grad = xb.T @ residual / len(idx)
            if cfg.fit_intercept:
                grad = np.append(grad, residual.mean())
            w = opt.step(w, grad)
        return w, total / n

    def _aggregate(self, r: int, vec: np.ndarray) -> _Aggregate:
        ctx, cfg = self.ctx, self.cfg
        tag = str(r)
        label = f"secure aggregation round {r}"
        try:
            client = _secagg.ClientRound(self.me, f"{_session(ctx)}|{r}".encode(), self.threshold, label)
            ctx.remote(client.advert().to_wire(), "secagg_keys", tag, [self.arbiter])
            msg = self._expect("secagg_roster", tag)
            roster, raw = msg.get("roster"), msg.get("adverts")
            if not isinstance(roster, list) or not isinstance(raw, dict):
                raise _secagg.SecAggError(f"{label}: malformed roster")
            adverts = {str(u): _secagg.Advert.from_wire(a, str(u)) for u, a in raw.items()}
            ctx.remote(
                client.share_keys([str(u) for u in roster], adverts), "secagg_shares", tag, [self.arbiter]
            )
            msg = self._expect("secagg_inbox", tag)
            u2, inbox = msg.get("u2"), msg.get("inbox")
            if not isinstance(u2, list) or not isinstance(inbox, dict):
                raise _secagg.SecAggError(f"{label}: malformed share relay")
            client.receive_shares([str(u) for u in u2], inbox)
            encoded = _secagg.quantize(vec, cfg.secagg.precision, _secagg.headroom_for(len(self.clients)))
            ctx.remote(client.mask(encoded), "secagg_masked", tag, [self.arbiter])
            msg = self._expect("secagg_unmask", tag)
            survivors = msg.get("survivors")
            if not isinstance(survivors, list):
                raise _secagg.SecAggError(f"{label}: malformed survivor list")
            ctx.remote(client.reveal([str(u) for u in survivors]), "secagg_reveal", tag, [self.arbiter])
        except _secagg.SecAggError as exc:
            raise ComponentError(f"{ctx.where}: {exc}") from None
        msg = self._expect("secagg_result", tag)
        weights = msg.get("weights")
        if not isinstance(weights, np.ndarray) or weights.shape != vec[:-2].shape:
            raise ComponentError(f"{ctx.where}: malformed aggregated model from the arbiter")
        return _Aggregate(
            np.asarray(weights, dtype=np.float64),
            float(msg.get("loss", float("nan"))),
            bool(msg.get("stop", False)),
            bool(msg.get("converged", False)),
            int(msg.get("clients", 0)),
        )

    def _finish(
        self,
        w: np.ndarray,
        losses: list[float],
        local_losses: list[float],
        rounds: int,
        epochs: int,
        converged: bool,
        batch: int,
    ) -> None:
        ctx, cfg = self.ctx, self.cfg
        n, f = self.x.shape
        coef = w[:f]
        intercept = float(w[f]) if cfg.fit_intercept else 0.0
        prob = _sigmoid(self.x @ coef + intercept)
        ctx.save_data(binary_predictions(self.table, prob, cfg.threshold, "train"), TRAIN_OUT_KEYS)
        ctx.save_model(
            {
                "header": list(self.table.meta.feature_columns),
                "weights": coef.tolist(),
                "intercept": intercept,
                "fit_intercept": cfg.fit_intercept,
                "threshold": cfg.threshold,
                "label_name": self.table.meta.label_column,
                "epochs": epochs,
                "rounds": rounds,
                "converged": converged,
                "loss_history": losses,
                "optimizer": cfg.optimizer,
                "dialect": cfg.dialect,
                "secure_aggregation": {"threshold": self.threshold, "precision": cfg.secagg.precision},
            },
            {"weights": coef},
            {"module": "HomoLR", "aggregation": "secure_aggregation"},
        )
        ctx.metrics.update({"epochs": epochs, "rounds": rounds, "converged": converged})
        if losses:
            ctx.metrics["loss"] = losses[-1]
        ctx.summary.update(
            {
                "rows": n,
                "features": f,
                "epochs": epochs,
                "rounds": rounds,
                "converged": converged,
                "loss_history": losses,
                "local_loss_history": local_losses,
                "optimizer": cfg.optimizer,
                "batch_size": batch,
                "secure_aggregation": {"threshold": self.threshold, "clients": len(self.clients)},
            }
        )
        ctx.info("trained: %d epochs, %d aggregation rounds", epochs, rounds)


# ---------------------------------------------------------------------------- arbiter


class _Arbiter:
    def __init__(self, ctx: TaskContext, cfg: HomoLRConfig, clients: list[Party]) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.clients = clients
        self.threshold = cfg.secagg.threshold_for(len(clients), ctx.where)
        self.grace = cfg.secagg.timeout
        self.dropped: dict[str, int] = {}
        self.setup: dict[str, Any] = {}

    # -------------------------------------------------------------- messaging

    def _gather(
        self, name: str, tag: str, parties: Sequence[Party], first_wait: float | None = None
    ) -> dict[Party, Payload]:
        """Whatever ``parties`` send under (name, tag) within a bounded wait.

        With ``first_wait`` the wait is that long for the first message, then :attr:`grace` more
        for the rest (clients may spend long on local training, but all about equally long);
        without, the whole step gets :attr:`grace` seconds.
        """
        ctx = self.ctx
        pending = list(parties)
        got: dict[Party, Payload] = {}
        deadline = time.monotonic() + (first_wait if first_wait is not None else self.grace)
        while pending and time.monotonic() < deadline:
            ctx.check_abort()
            for party in list(pending):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    obj = ctx.federation.get(
                        name, tag, [party], timeout=min(_POLL_PASS / len(pending), remaining)
                    )[0]
                except FederationTimeout:
                    continue
                got[party] = obj
                pending.remove(party)
                if first_wait is not None and len(got) == 1:
                    deadline = min(deadline, time.monotonic() + self.grace)
        return got

    def _notify(self, obj: Payload, name: str, tag: str, parties: Sequence[Party]) -> None:
        """Best effort: a party that dropped may not be reachable any more."""
        for party in parties:
            try:
                self.ctx.remote(obj, name, tag, [party])
            except FederationError as exc:
                self.ctx.warning("could not tell %s (%s): %s", party, name, exc)

    def _exclude(self, parties: Sequence[Party], name: str, tag: str, r: int | None, why: str) -> None:
        for party in parties:
            where = f"round {r}" if r is not None else "setup"
            self.dropped[party_label(party)] = -1 if r is None else r
            self.ctx.warning("%s dropped out (%s): %s", party, where, why)
        self._notify(
            {"error": f"excluded from secure aggregation: {why} (bounded wait {self.grace:g}s)"},
            name,
            tag,
            parties,
        )

    def _fail(self, parties: Sequence[Party], name: str, tag: str, message: str) -> NoReturn:
        self._notify({"error": message}, name, tag, parties)
        raise ComponentError(f"{self.ctx.where}: {message}")

    # -------------------------------------------------------------- training

    def _setup(self) -> list[Party]:
        ctx = self.ctx
        got = self._gather("homo_lr_setup", "0", self.clients, first_wait=ctx.get_timeout)
        late = [p for p in self.clients if p not in got]
        self._exclude(late, "homo_lr_setup_ack", "0", None, "sent no training setup in time")
        joined = [p for p in self.clients if p in got]
        if len(joined) < self.threshold:
            self._fail(
                joined,
                "homo_lr_setup_ack",
                "0",
                f"setup: only {len(joined)} of {len(self.clients)} clients joined; the secure aggregation "
                f"threshold is {self.threshold}",
            )
        first = got[joined[0]]
        for party in joined:
            msg = got[party]
            if not isinstance(msg, dict):
                self._fail(joined, "homo_lr_setup_ack", "0", f"malformed setup from {party}")
            for key in _AGREED:
                if msg.get(key) != first.get(key):
                    self._fail(
                        joined,
                        "homo_lr_setup_ack",
                        "0",
                        f"clients disagree on {_FIELD_OF.get(key, key)}: {joined[0]} has "
                        f"{first.get(key)!r}, {party} has {msg.get(key)!r}",
                    )
        if first.get("threshold") != self.threshold:
            self._fail(
                joined,
                "homo_lr_setup_ack",
                "0",
                f"secure_aggregate_param.threshold differs: the clients use {first.get('threshold')!r}, "
                f"the arbiter {self.threshold}",
            )
        ctx.remote({"clients": [party_label(p) for p in joined]}, "homo_lr_setup_ack", "0", joined)
        self.setup = first
        return joined

    def run(self) -> None:
        ctx = self.ctx
        alive = self._setup()
        setup = self.setup
        # the clients' agreed settings rule (the arbiter may not see their role-specific ones)
        epochs = int(setup["epochs"])
        every = int(setup["aggregate_every"])
        precision = int(setup["precision"])
        length = int(setup["features"]) + (1 if setup["fit_intercept"] else 0) + 2
        early_stop = setup.get("early_stop")
        tol = float(setup.get("tol") or 0.0)
        rounds_planned = len(aggregation_epochs(epochs, every))
        ctx.info(
            "aggregating for %d clients over %d rounds, threshold %d, straggler wait %gs",
            len(alive),
            rounds_planned,
            self.threshold,
            self.grace,
        )
        losses: list[float] = []
        per_round: list[int] = []
        prev: np.ndarray | None = None
        converged = False
        for r in range(rounds_planned):
            total, alive, survivors = self._round(r, alive, length)
            vec = _secagg.dequantize(total, precision)
            count = vec[-1]
            if count <= 0:
                self._fail(alive, "secagg_result", str(r), f"round {r}: aggregated row count is {count}")
            weights = vec[:-2] / count
            loss = float(vec[-2] / count)
            losses.append(loss)
            per_round.append(survivors)
            if early_stop:  # 1.x only: FATE 2.x trains every epoch
                if early_stop == "abs":
                    converged = loss < tol
                elif early_stop == "weight_diff":
                    converged = prev is not None and float(np.linalg.norm(weights - prev)) < tol
                elif early_stop == "diff":
                    converged = len(losses) > 1 and abs(losses[-2] - loss) < tol
            stop = converged or r == rounds_planned - 1
            ctx.remote(
                {
                    "weights": weights,
                    "loss": loss,
                    "stop": stop,
                    "converged": converged,
                    "clients": survivors,
                },
                "secagg_result",
                str(r),
                alive,
            )
            ctx.info("round %d: %d clients, loss %.6f", r, survivors, loss)
            prev = weights
            if stop:
                break
        ctx.save_model(
            {
                "rounds": len(losses),
                "converged": converged,
                "loss_history": losses,
                "clients_per_round": per_round,
                "dropped": dict(self.dropped),
                "threshold": self.threshold,
            },
            meta={"module": "HomoLR", "aggregation": "secure_aggregation"},
        )
        ctx.metrics.update({"rounds": len(losses), "converged": converged})
        if losses:
            ctx.metrics["loss"] = losses[-1]
        ctx.summary.update(
            {
                "rounds": len(losses),
                "converged": converged,
                "loss_history": losses,
                "clients_per_round": per_round,
                "dropped": dict(self.dropped),
                "secure_aggregation": {
                    "threshold": self.threshold,
                    "clients": len(self.clients),
                    "timeout": self.grace,
                    "precision": precision,
                },
            }
        )
        ctx.info("done: %d rounds, dropped %s", len(losses), dict(self.dropped) or "none")

    def _round(self, r: int, alive: list[Party], length: int) -> tuple[np.ndarray, list[Party], int]:
        """One secure aggregation round: the unmasked sum, who goes on, and how many contributed."""
        ctx = self.ctx
        tag = str(r)
        label = f"secure aggregation round {r}"
        by_id = {party_label(p): p for p in alive}
        server = _secagg.ServerRound(f"{_session(ctx)}|{r}".encode(), self.threshold, label)

        def parties(ids: Sequence[str]) -> list[Party]:
            return [by_id[u] for u in ids]

        step_reply = "secagg_roster"
        responders: list[Party] = alive
        try:
            # 1. keys (clients may still be training: long first wait, bounded wait for the rest)
            got = self._gather("secagg_keys", tag, alive, first_wait=ctx.get_timeout)
            self._exclude(
                [p for p in alive if p not in got], step_reply, tag, r, "advertised no keys in time"
            )
            responders = [p for p in alive if p in got]
            adverts = {party_label(p): _secagg.Advert.from_wire(got[p], str(p)) for p in responders}
            roster = server.collect_adverts(adverts)
            members = parties(roster)
            ctx.remote(
                {"roster": roster, "adverts": {u: a.to_wire() for u, a in server.adverts.items()}},
                step_reply,
                tag,
                members,
            )
            # 2. sealed shares, relayed
            step_reply, responders = "secagg_inbox", members
            got = self._gather("secagg_shares", tag, members)
            self._exclude([p for p in members if p not in got], step_reply, tag, r, "shared no keys in time")
            responders = [p for p in members if p in got]
            sent = {party_label(p): _mapping(got[p], str(p), label) for p in responders}
            inboxes = server.route_shares(sent)
            for u in server.u2:
                ctx.remote({"u2": server.u2, "inbox": inboxes[u]}, step_reply, tag, [by_id[u]])
            # 3. masked inputs
            step_reply, responders = "secagg_unmask", parties(server.u2)
            got = self._gather("secagg_masked", tag, responders)
            late = [p for p in responders if p not in got]
            self._exclude(late, step_reply, tag, r, "sent no masked input in time")
            responders = [p for p in responders if p in got]
            survivors = server.collect_masked({party_label(p): got[p] for p in responders}, length)
            if late:
                ctx.info("%s: rebuilding the pairwise masks of %s from their shares", label, server.dropped)
            ctx.remote({"survivors": survivors}, step_reply, tag, parties(survivors))
            # 4. unmasking shares
            step_reply, responders = "secagg_result", parties(survivors)
            got = self._gather("secagg_reveal", tag, responders)
            late = [p for p in responders if p not in got]
            self._exclude(late, step_reply, tag, r, "sent no unmasking shares in time")
            responders = [p for p in responders if p in got]
            total = server.unmask({party_label(p): _mapping(got[p], str(p), label) for p in responders})
        except _secagg.SecAggError as exc:
            self._fail(responders, step_reply, tag, str(exc))
        return total, responders, len(server.survivors)


def _mapping(obj: object, who: str, label: str) -> Mapping[str, Any]:
    if not isinstance(obj, dict):
        raise _secagg.SecAggError(f"{label}: malformed message from {who}")
    return obj


__all__ = ["HomoLR", "aggregation_epochs", "party_label"]
