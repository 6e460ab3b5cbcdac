"""spark-submit jobs/maintain.py --conf conf/cluster.yaml [--set lakehouse.vacuum_hours=168]"""
from recsys_spark.cli import run_job

run_job("maintain")
