"""Models: ``model evaluate`` (purged CV, metrics net of costs, PSR/DSR, importance, an MLflow run),
``model train`` (fit and save a model with its contract) and ``predict`` (live, from the online store).
"""

from __future__ import annotations

import json
import math
import sys

import click

from mt5lab.cli.common import common, open_offline
from mt5lab.cli.options import TIMEFRAME, now_option


def _selection(fn):
    for opt in reversed([
        click.option("--symbols", required=True, help="Comma-separated symbols, e.g. EURUSD,GBPUSD."),
        click.option("--timeframe", type=TIMEFRAME, default="D1", show_default=True),
        click.option("--label", default="fwd_return_5", show_default=True,
                     help="Target: fwd_return_<h> or fwd_direction_<h> (h bars ahead)."),
        click.option("--start", default=None, help="First decision time (ISO, UTC); default: the first bar close."),
        click.option("--end", default=None, help="Last decision time (ISO, UTC); default: the latest bar close."),
        click.option("--every", default=1, type=int, show_default=True, help="One decision every this many bar closes."),
        click.option("--model", "kind", type=click.Choice(["lightgbm", "linear"]), default="lightgbm",
                     show_default=True),
        click.option("--seed", default=0, type=int, show_default=True),
    ]):
        fn = opt(fn)
    return fn


def _training_set(profile, symbols, timeframe, label, start, end, every):
    from mt5lab.training.assemble import decision_times, training_set
    from mt5lab.training.files import parse_time
    from mt5lab.training.labels import parse_label

    lab = parse_label(label)
    labels = [lab.name] + ([f"fwd_return_{lab.horizon}"] if lab.kind == "direction" else [])
    names = [s.strip() for s in symbols.split(",") if s.strip()]
    if not names:
        raise click.UsageError("--symbols: give at least one symbol")
    store = open_offline(profile)
    keys = decision_times(names, parse_time(start or "1970-01-01", "start"), parse_time(end or "2100-01-01", "end"),
                          timeframe.upper(), every, store=store)
    ts = training_set(keys, "mt5_v1", timeframe=timeframe.upper(), labels=labels, to="polars", store=store,
                      progress=False)
    return names, ts


def _num(v, fmt=".4f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


@click.group("model")
def model() -> None:
    """Validate, train and save models on the feature store's training sets."""


@model.command("evaluate")
@_selection
@click.option("--cv", "scheme", type=click.Choice(["walk-forward", "kfold", "cpcv"]), default="walk-forward",
              show_default=True)
@click.option("--folds", default=5, type=int, show_default=True, help="Folds (cpcv: groups N).")
@click.option("--test-groups", default=2, type=int, show_default=True, help="cpcv: test groups k per split.")
@click.option("--embargo", default=0, type=int, show_default=True, help="Embargo after each test block, in bars.")
@click.option("--cost-bps", default=2.0, type=float, show_default=True,
              help="Cost per unit traded, basis points, for rows without a spread.")
@click.option("--repeats", default=1, type=int, show_default=True, help="Shuffles per feature for the MDA.")
@click.option("--experiment", default=None, help="MLflow experiment (default mt5lab/<tf>/<label>/<symbols>).")
@click.option("--no-track", is_flag=True, help="Do not record an MLflow run (then n_trials is 1).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@common
def evaluate(symbols, timeframe, label, start, end, every, kind, seed, scheme, folds, test_groups, embargo,
             cost_bps, repeats, experiment, no_track, as_json, profile):
    """Cross-validate a model (purged, embargoed) and report IC, Sharpe net of costs, PSR, DSR, importance."""
    from mt5lab.model.evaluate import evaluate as run
    from mt5lab.training.manifest import content_hash

    names, ts = _training_set(profile, symbols, timeframe, label, start, end, every)
    ev = run(ts, label, cv=scheme, folds=folds, embargo=embargo, test_groups=test_groups, model=kind,
             cost_bps=cost_bps, seed=seed, repeats=repeats)
    track = None
    if not no_track:
        import matplotlib.pyplot as plt

        from mt5lab.model.tracking import record
        from mt5lab.plots import model as figs

        figures = {"folds": figs.folds_figure(ev), "ic": figs.ic_figure(ev), "equity": figs.equity_figure(ev),
                   "importance": figs.importance_figure(ev)}
        track = record(ev, timeframe=timeframe.upper(), symbols=names, experiment=experiment,
                       manifest={"content_hash": content_hash(ts)}, figures=figures)
        plt.close("all")
    out = ev.summary() | {"symbols": names, "timeframe": timeframe.upper(), "tracking": track}
    if as_json:
        click.echo(json.dumps(out, default=str))
        return
    m = ev.metrics
    click.echo(f"{kind} on {','.join(names)} {timeframe.upper()} -> {label}: {m['rows']} decisions, "
               f"{m['scored_rows']} scored out of sample ({scheme}, {len(ev.folds)} folds, embargo {embargo})")
    for f in ev.folds:
        click.echo(f"  fold {f['fold']}: test {f['test_start'][:10]}..{f['test_end'][:10]} ({f['test_rows']} rows), "
                   f"train {f['train_rows']} (purged {f['purged']}, embargoed {f['embargoed']}), "
                   f"IC {_num(f['ic'])}, rank IC {_num(f['rank_ic'])}, Sharpe {_num(f['sharpe'])}")
    click.echo(f"IC {_num(m['ic'])} (ICIR {_num(m['icir'], '.2f')}), rank IC {_num(m['rank_ic'])}, "
               f"hit rate {_num(m['hit_rate'], '.3f')}")
    click.echo(f"strategy net of costs: Sharpe {_num(m['sharpe'])} per {label.split('_')[-1]}-bar period over "
               f"{m['periods']} periods, max drawdown {_num(m['max_drawdown'], '.1%')}, turnover "
               f"{_num(m['turnover'], '.2f')}")
    click.echo(f"PSR {_num(m['psr'], '.3f')}, DSR {_num(m['dsr'], '.3f')} over {m['n_trials']} trial(s)")
    top = ev.importance_by_view.sort_values("mda", ascending=False)
    click.echo("importance by view (MDA): " + ", ".join(f"{r.view} {_num(r.mda)}" for r in top.itertuples()))
    if track:
        click.echo(f"run {track['run_id']} in experiment {track['experiment']} ({track['tracking_uri']})")


@model.command("train")
@_selection
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@click.option("--track", is_flag=True, help="Also record the model directory as an MLflow run (not a trial).")
@common
def train(symbols, timeframe, label, start, end, every, kind, seed, out, track, profile):
    """Fit a model on every labelled decision and save it with its contract (feature service, catalog hash)."""
    from mt5lab.model.artifact import train as fit
    from mt5lab.training.manifest import content_hash

    names, ts = _training_set(profile, symbols, timeframe, label, start, end, every)
    saved = fit(ts, label, model=kind, seed=seed, timeframe=timeframe.upper(), out=out,
                manifest={"content_hash": content_hash(ts)})
    c = saved.contract
    click.echo(f"saved {kind} model to {out}: {c['train_rows']} rows ({c['train_start'][:10]}..{c['train_end'][:10]}), "
               f"{len(c['features'])} features of {c['feature_service']} ({c['timeframe']}), catalog {c['catalog_hash']}, "
               f"{c['nulls']['label_null_rows']} rows without a label left out")
    if track:
        from mt5lab.model.tracking import record_model

        info = record_model(saved, symbols=names)
        click.echo(f"run {info['run_id']} in experiment {info['experiment']} ({info['tracking_uri']})")


@click.command("predict")
@click.argument("symbols", nargs=-1, required=True)
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False),
              help="Model directory (mt5lab model train --out).")
@now_option("Predict as of this instant (ISO with offset; default: now).")
@click.option("--json", "as_json", is_flag=True, help="One JSON record per symbol.")
@common
def predict(symbols, model_dir, now, as_json, profile):
    """Live predictions from the online features (ttl-aware). Exit 1 if a symbol gets none."""
    from mt5lab.model.predict import predict_online

    preds = predict_online(model_dir, list(symbols), profile=profile, now=now)
    for p in preds:
        if as_json:
            click.echo(json.dumps(p.as_dict()))
        elif p.status == "ok":
            click.echo(f"{p.symbol}: {p.prediction:+.6f} at decision time {p.decision_time.isoformat()}")
        else:
            click.echo(f"{p.symbol}: no prediction ({p.status}: {p.reason})")
    if any(p.status != "ok" for p in preds):
        sys.exit(1)
