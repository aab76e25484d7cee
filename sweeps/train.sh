#!/bin/sh
# The command every sweep file runs; the wandb agent calls it as
#
#   sh sweeps/train.sh [--paper_sgd_steps] train.py --name=value ... [flags appended in the sweep file]
#
# and it ends in `exec uv run train.py <flags>`.
#
# --algo crl|sac|td3 (algo_depth.yaml) picks the program: train.py, sac.py or td3.py
# (docs/baselines.md). A wandb sweep has one program, so the algorithm travels as a swept
# parameter and is taken out of the flags here; the last --algo wins, as for any flag.
#
# Why it exists: a wandb sweep cannot tie one parameter to another, but the paper scales the
# actor with the critic. So the effective --critic_depth and --critic_network_width are copied
# to --actor_depth and --actor_network_width.
#
# The copies go IN FRONT of all other flags. train.py's parser (tyro) keeps the last occurrence
# of a repeated flag, so an actor flag given anywhere else (a swept actor_depth, or a flag a user
# appended to the sweep's command) wins over the copy; nothing the user wrote is overridden.
# "Effective" means the last occurrence, as tyro reads it: a --critic_depth appended after the
# swept one is the one copied.
#
# --paper_sgd_steps (batch_depth.yaml): also set --num_sgd_batches_per_training_step to the
# paper's code's rule, min(800, floor(511488 / batch_size)), for the effective --batch_size.
# 511,488 = 512 x 999 stays under the 512 envs x 1000 steps = 512,000 (state, goal) pairs one
# training step holds at the paper's defaults, so no batch size asks for more samples than a step
# holds (train.py refuses that): batches up to 639 keep the default 800 SGD steps, 1024 gets 499,
# 2048 gets 249. A wandb sweep cannot compute this, hence the wrapper. Also placed in front, so
# an appended --num_sgd_batches_per_training_step wins. Not computed when no --batch_size is given
# (the default 512 already has 800).
#
# Both `--name=value` and `--name value` spellings are read.

paper_sgd_steps=
if [ "$1" = "--paper_sgd_steps" ]; then
    paper_sgd_steps=1
    shift
fi
if [ $# -lt 1 ]; then
    echo "usage: sh sweeps/train.sh [--paper_sgd_steps] train.py [--algo=crl|sac|td3] [--flag=value ...]" >&2
    exit 2
fi
program=$1
shift

depth= width= batch= algo= previous=
for arg; do
    shift  # the loop's list was read once at its start; what is kept goes back on the end
    case "$previous" in
        --critic_depth) depth=$arg ;;
        --critic_network_width) width=$arg ;;
        --batch_size) batch=$arg ;;
        --algo) algo=$arg previous= ; continue ;;
    esac
    case "$arg" in
        --critic_depth=*) depth=${arg#*=} ;;
        --critic_network_width=*) width=${arg#*=} ;;
        --batch_size=*) batch=${arg#*=} ;;
        --algo=*) algo=${arg#*=} previous= ; continue ;;
        --algo) previous=$arg ; continue ;;
    esac
    set -- "$@" "$arg"
    previous=$arg
done
if [ "$previous" = "--algo" ]; then
    echo "error: --algo needs a value: crl, sac or td3" >&2
    exit 2
fi
case "$algo" in
    "") ;;
    crl) program=train.py ;;
    sac | td3) program=$algo.py ;;
    *) echo "error: --algo '$algo' is not one of crl, sac, td3" >&2; exit 2 ;;
esac

if [ -n "$paper_sgd_steps" ] && [ -n "$batch" ]; then
    # Shell arithmetic needs a plain positive integer (a leading 0 would read as octal).
    case "$batch" in
        *[!0-9]* | 0*) echo "error: --batch_size '$batch' is not a positive integer" >&2; exit 2 ;;
    esac
    steps=$((511488 / batch))
    if [ "$steps" -gt 800 ]; then steps=800; fi
    set -- "--num_sgd_batches_per_training_step=$steps" "$@"
fi
if [ -n "$width" ]; then set -- "--actor_network_width=$width" "$@"; fi
if [ -n "$depth" ]; then set -- "--actor_depth=$depth" "$@"; fi

exec uv run "$program" "$@"
