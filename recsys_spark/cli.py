"""`recsys-spark run <stage>` and `recsys-spark pipeline`: the same code the jobs/ files call."""
from __future__ import annotations

import argparse
import sys

from recsys_spark.config import ConfigError, load_config


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recsys-spark", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--conf", default=None, help="overlay YAML (conf/local.yaml, cluster.yaml, databricks.yaml)")
    common.add_argument("--dataset", default=None, help="a conf/datasets/<name>.yaml layer, e.g. online_retail")
    common.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value, e.g. --set source.synthetic.n_events=100000")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", parents=[common], help="run stages, in the order given, in one driver")
    run.add_argument("stages", nargs="+", metavar="stage")
    sub.add_parser("pipeline", parents=[common], help="run every stage in order, then print a summary")
    sub.add_parser("config", parents=[common], help="print the resolved config")
    search = sub.add_parser("search", parents=[common], help="search the catalogue, as a shopper would")
    search.add_argument("query")
    search.add_argument("--user", default=None, help="a user_id: personalised results for a known user")
    search.add_argument("--k", type=int, default=10)
    search.add_argument("--mode", choices=["bm25", "vector", "hybrid", "personalised"], default=None)
    search.add_argument("--filter", dest="filters", action="append", default=[], metavar="KEY=VALUE",
                        help="category=..., brand=..., min_price=..., max_price=..., in_stock=true")
    search.add_argument("--facets", action="store_true", help="also print facet counts over the matches")
    rec = sub.add_parser("recommend", parents=[common], help="a user's list (gold.recs_final), as a service gives it")
    rec.add_argument("--user", required=True, help="a user_id; one never seen gets popularity in their context")
    rec.add_argument("--k", type=int, default=10)
    rec.add_argument("--explain", action="store_true", help="print each item's reason and evidence")
    rec.add_argument("--region", default=None)
    rec.add_argument("--age-band", default=None)
    rec.add_argument("--query", default=None, help="the shopper's current search, for a new user")
    return p


def print_recommendations(args, cfg) -> int:
    from recsys_spark.hybrid.serve import user_list
    from recsys_spark.lakehouse import serving_tables
    from recsys_spark.pipeline.progress import format_table

    context = {c: v for c, v in (("region", args.region), ("age_band", args.age_band)) if v}
    try:
        recs = user_list(serving_tables(cfg), args.user, args.k, context, args.query)
    except (LookupError, ValueError) as e:
        print(f"recsys-spark: {e}", file=sys.stderr)
        return 2
    if len(recs) < args.k:
        print(f"recsys-spark: {len(recs)} of the {args.k} asked for: all the served lists hold for this user "
              f"(gold.recs_final keeps cf.k = {cfg.cf.k} per known user, gold.popularity_context "
              f"hybrid.candidates = {cfg.hybrid.candidates} per segment; raise them and re-run the hybrid stage "
              "for longer lists)", file=sys.stderr)
    columns = ["rank", "item_id", "title", "score"] + (["reason", "evidence"] if args.explain else [])
    print(format_table(columns, [[r["rank"], r["item_id"], str(r["title"])[:50], f"{r['score']:.4f}",
                                  *([r["reason"], r["evidence"]] if args.explain else [])]
                                 for _, r in recs.iterrows()]))
    return 0


def print_search(args, cfg) -> int:
    from recsys_spark.pipeline.progress import format_table
    from recsys_spark.search.searcher import Searcher, SearchError

    filters = {}
    for f in args.filters:
        key, sep, value = f.partition("=")
        if not sep:
            print(f"recsys-spark: --filter {f!r} is not KEY=VALUE", file=sys.stderr)
            return 2
        filters[key.strip()] = value.strip()
    try:
        result = Searcher.load(cfg).search(args.query, user=args.user, k=args.k, filters=filters, mode=args.mode)
    except SearchError as e:
        print(f"recsys-spark: {e}", file=sys.stderr)
        return 2
    if result.corrected:
        print("searched for: " + ", ".join(f"{a} -> {b}" for a, b in result.corrected.items()))
    if not result.terms:
        print(f"nothing to search for in {args.query!r}: only stop words")
        return 0
    print(f"mode: {result.mode}")
    print(format_table(["rank", "item", "title", "score", "why"],
                       [[h.rank, h.item_id, h.title[:60], f"{h.score:.4f}", h.why] for h in result.hits]))
    if args.facets:
        for name, counts in result.facets.items():
            print(f"{name}: " + ", ".join(f"{k} ({v})" for k, v in list(counts.items())[:10]))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        cfg = load_config(args.conf, args.dataset, args.overrides)
    except ConfigError as e:
        print(f"recsys-spark: bad config: {e}", file=sys.stderr)
        return 2
    if args.command == "config":
        import yaml

        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        return 0

    if args.command == "search":
        return print_search(args, cfg)
    if args.command == "recommend":
        return print_recommendations(args, cfg)

    from recsys_spark.logs import setup_logging
    from recsys_spark.pipeline import (
        HOUSEKEEPING,
        STAGES,
        bandit_summary,
        metrics_summary,
        quality_summary,
        run_stage,
        table_summary,
        warn_stale_upstream,
    )
    from recsys_spark.pipeline.context import Context
    from recsys_spark.pipeline.progress import format_table

    setup_logging()
    stages = list(STAGES) if args.command == "pipeline" else args.stages
    unknown = [s for s in stages if s not in {**STAGES, **HOUSEKEEPING}]
    if unknown:
        print(f"recsys-spark: unknown stage {unknown[0]!r}; stages are {', '.join({**STAGES, **HOUSEKEEPING})}",
              file=sys.stderr)
        return 2
    ctx = Context.create(cfg)
    warn_stale_upstream(ctx, stages)
    seconds = {name: run_stage(ctx, name) for name in stages}
    if args.command == "pipeline":
        print("\nQuality report (rows failed per check, all batches):")
        print(quality_summary(ctx))
        print("\nHeld-out test, top-K (seen items excluded):")
        print(metrics_summary(ctx))
        print("\nBandits on the simulated shop, this run's rounds (clicks; regret against the best slates):")
        print(bandit_summary(ctx))
        print("\nTables:")
        print(table_summary(ctx))
        print("\nStages:")
        print(format_table(["stage", "seconds"], [[k, f"{v:.1f}"] for k, v in seconds.items()]))
    return 0


def run_job(stage: str) -> None:
    """The body of every jobs/<stage>.py: same arguments as `recsys-spark run <stage>`."""
    command = ["pipeline"] if stage == "pipeline" else ["run", stage]
    sys.exit(main([*command, *sys.argv[1:]]))


if __name__ == "__main__":
    sys.exit(main())
