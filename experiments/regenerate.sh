#!/usr/bin/env bash
# Regenerate every committed result in results/ from the experiment files, with the one driver (abm sweep) and
# the one report kit (abm report). About 70 minutes on 2 cores. Usage: experiments/regenerate.sh [WORKERS]
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-2}
abm=${ABM:-.venv/bin/abm}
py=${PYTHON:-.venv/bin/python}

sweep() {  # sweep EXPERIMENT OUT: a fresh sweep directory (its handwritten findings.md kept), then its report
    local kept=""
    if [ -f "$2/findings.md" ]; then kept=$(mktemp); cp "$2/findings.md" "$kept"; fi
    rm -rf "$2"
    "$abm" sweep "$1" --out "$2" --workers "$workers"
    "$abm" report "$2"
    if [ -n "$kept" ]; then mv "$kept" "$2/findings.md"; fi
}

sweep experiments/equilibrium_start.toml results/equilibrium_start
sweep experiments/behaviour.toml results/behaviour
sweep experiments/forced_selling.toml results/forced_selling
for e in leverage_vs_depth oracle_latency liquidation_design sensitivity perps_insurance perps_calm; do
    sweep "experiments/$e.toml" "results/$e"
done
# the ten-parameter Sobol proof at full size (704 runs of 1,000 traders x 1,440 steps, about 6-7 min on 2 cores)
sweep experiments/sensitivity_ten.toml results/sensitivity_ten
sweep experiments/dynamic_margin.toml results/dynamic_margin
"$abm" sweep experiments/dynamic_margin_instant.toml --out results/dynamic_margin/instant_cut --workers "$workers"
"$abm" report results/dynamic_margin/instant_cut
"$abm" sweep experiments/dynamic_margin_feed.toml --out results/dynamic_margin/feed --workers "$workers"
"$abm" report results/dynamic_margin/feed
"$abm" sweep experiments/dynamic_margin_ltv.toml --out results/dynamic_margin/ltv_only --workers "$workers"
"$abm" report results/dynamic_margin/ltv_only
"$py" experiments/dynamic_margin.py --sweep results/dynamic_margin
sweep experiments/auctions.toml results/auctions
"$py" experiments/auctions_illustration.py --out results/auctions  # the time series of its findings.md
sweep experiments/lst_depeg.toml results/lst_depeg
"$abm" sweep experiments/lst_depeg_threshold.toml --out results/lst_depeg/threshold --workers "$workers"
"$abm" report results/lst_depeg/threshold
# adversaries: liquidation hunting (positions visible vs hidden) and oracle manipulation against its defences
for e in liquidation_hunt oracle_attack oracle_attack_budget; do
    sweep "experiments/$e.toml" "results/$e"
done
"$py" experiments/adversary_paths.py
# keep the handwritten findings (results/contagion/report.md); everything else there is generated
rm -rf results/contagion/contagion_* results/contagion/figures results/contagion/illustration \
    results/contagion/tables.md results/contagion/numbers.json results/contagion/hawkes_runs.csv
for f in experiments/contagion_*.toml; do
    "$abm" sweep "$f" --out "results/contagion/$(basename "$f" .toml)" --workers "$workers"
done
"$py" experiments/contagion_illustrations.py --out results/contagion
"$abm" report results/contagion
rm -rf results/validation/runs
"$abm" sweep experiments/validation.toml --out results/validation/runs --workers "$workers"
"$py" experiments/validation.py
