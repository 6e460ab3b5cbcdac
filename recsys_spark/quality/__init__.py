from recsys_spark.quality.rules import (  # noqa: F401
    EVENTS,
    ITEMS,
    USERS,
    TableRules,
    check_rules,
    mark_duplicates,
    mark_unknown,
    row_checks,
    split_valid,
)
