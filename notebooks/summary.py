# %% [markdown]
# # Summary: the headline numbers of this build
#
# This chapter runs last. It reads what the other notebooks of this build left behind: each
# notebook's run stamp (when it ran, on which commit, whether this build re-used it), each
# experiment's recorded headline numbers (`results/<experiment>/records.json`, the same files
# the paper reads) and each saved figure with the command that makes it again. Nothing here is
# typed by hand. A book built by `make test` shows smoke runs (tiny settings, for CI);
# `make book` shows the full runs the chapters discuss.

# %% tags=["parameters"]
seed = 0
results_root = "results"

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from bbpm.utils import Experiment, repo_root
from bbpm.utils.build_report import (
    figure_commands_markdown,
    load_figures,
    load_records,
    markdown_table,
    run_rows,
)

exp = Experiment.from_notebook("summary", "notebooks/summary.py", globals())
root = repo_root()
results = root / results_root
runs = run_rows(root, skip=("summary",))
records = load_records(results)
figures = load_figures(results)

# %% [markdown]
# ## How each chapter was made
#
# A notebook runs again only when its source, its params file, the `bbpm` package or the
# installed packages changed since its last run (`make book FORCE=1` runs them all). In this
# build {glue:text}`notebooks_run` notebook(s) ran and {glue:text}`notebooks_reused` were
# re-used from an earlier run; their recorded compute time adds up to
# {glue:text}`total_minutes` minutes.

# %% tags=["hide-input"]
exp.record("notebooks_run", sum(not r["reused"] for r in runs), "d", "notebooks run in this build")
exp.record("notebooks_reused", sum(r["reused"] for r in runs), "d", "notebooks re-used")
total_seconds = sum(r["seconds"] or 0.0 for r in runs)
exp.record("total_minutes", total_seconds / 60, ".1f", "compute time of the notebooks shown")
header = ["notebook", "parameters", "ran (UTC)", "commit", "time (s)", "this build"]
rows = [
    [
        r["notebook"],
        f"`{r['params_file']}`",
        r["ran_at"],
        f"`{r['commit']}`",
        "n/a" if r["seconds"] is None else f"{r['seconds']:.0f}",
        "re-used" if r["reused"] else "ran",
    ]
    for r in runs
]
display(Markdown(markdown_table(header, rows) if rows else "No notebook stamp found."))

# %% [markdown]
# ## Headline numbers
#
# Every number an experiment recorded with `exp.record`, under the name the chapter prose
# and the paper use.

# %% tags=["hide-input"]
for exp_id, named in records.items():
    table = [[f"`{name}`", r["text"], r["description"]] for name, r in named.items()]
    display(Markdown(f"**{exp_id}**\n\n" + markdown_table(["name", "value", "what"], table)))
if not records:
    display(Markdown("No experiment recorded a headline number in this build."))

# %% [markdown]
# ## Reproduce each figure
#
# Each figure, the command that makes it again from the repository root (the notebook and
# the params file of this build) and, under each figure in its chapter, the commit. The same
# table is on the reproduce page.

# %% tags=["hide-input"]
commands = figure_commands_markdown(figures)
(exp.results_dir / "figure_commands.md").write_text(commands, encoding="utf-8")
display(Markdown(commands))

# %% [markdown]
# ## Where the time goes
#
# Each notebook's wall time when it last ran (kernel start included). The sum is about the
# time `make book` (or `make test`, for smoke runs) needs with nothing re-used.

# %% tags=["hide-input"]
exp.save_latex_table(
    "summary_table.tex",
    ["notebook", "mode", "runtime (s)"],
    [[r["notebook"], r["mode"], r["seconds"] or 0.0] for r in runs],
    caption="Runtime of each notebook in this build.",
)
exp.save_metrics({"runs": runs, "total_runtime_seconds": total_seconds})
fig, ax = plt.subplots(figsize=(7, 0.35 * max(len(runs), 1) + 1))
ax.barh([f"{r['notebook']} ({r['mode']})" for r in runs], [r["seconds"] or 0 for r in runs])
ax.invert_yaxis()
ax.set_xlabel("notebook wall time when it last ran (s)")
ax.set_title("Runtime per notebook")
runtimes_png = exp.save_figure(fig, "runtimes.png")
