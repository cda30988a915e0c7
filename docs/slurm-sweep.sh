#!/usr/bin/env bash
# A gridtwin sweep as a Slurm job array: one array task per shard, then one merge.
#
#   sbatch --array=0-7 docs/slurm-sweep.sh scenarios/uart-sweep.ron     # 8 shards
#   # when all tasks are done (or chain it: sbatch --dependency=afterok:<jobid> ...):
#   gridtwin merge out/uart-sweep/shard-*-of-8 --out out/uart-sweep/merged
#
# Each task reads its index from SLURM_ARRAY_TASK_ID (minus SLURM_ARRAY_TASK_MIN, so --array=1-8 works too) and
# the shard count from SLURM_ARRAY_TASK_COUNT (`--shard auto`). A task that is preempted or times out resumes
# where it stopped when requeued: finished points are kept beside its output directory.
#SBATCH --job-name=gridtwin-sweep
#SBATCH --cpus-per-task=4
#SBATCH --time=02:00:00
#SBATCH --requeue
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail
plan=${1:?usage: sbatch --array=0-N docs/slurm-sweep.sh PLAN.ron}
name=$(basename "$plan" .ron)
n=${SLURM_ARRAY_TASK_COUNT:?run this as an array job (sbatch --array=0-7 ...)}
i=$((SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-0}))
gridtwin --threads "${SLURM_CPUS_PER_TASK:-1}" sweep "$plan" --shard auto --out "out/$name/shard-$i-of-$n"
