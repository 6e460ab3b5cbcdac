"""spark-submit jobs/hybrid.py --conf conf/cluster.yaml [--dataset NAME] [--set key=value ...]"""
from recsys_spark.cli import run_job

run_job("hybrid")
