# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 — fMRI connectomes, confounds and leave-site-out decoding
#
# ABIDE I (PCP, C-PAC `filt_noglobal`, Harvard-Oxford 111 ROIs), autism vs
# control, from four sites → correlation connectomes → with and without
# confound regression and ComBat site harmonisation → **leave-site-out**: the
# classifier is always tested on a scanner it never saw.
#
# About two minutes on two CPU cores with the local data; nothing is
# downloaded.

# %%
import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")  # shared 2-core machines: one BLAS thread

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

torch.set_num_threads(1)

import neurodecode as nd

# %% [markdown]
# ## Load four sites
#
# `X` is ragged: a list of `(111, n_times)` arrays, one per scan; the number
# of volumes is constant within a site but differs between sites, and so
# does the repetition time (`meta["tr"]`). `meta` carries the covariates a
# decoder could exploit instead of the diagnosis: site, age, sex and head
# motion (`mean_fd`, mean framewise displacement in mm).

# %%
SITES = ["NYU", "UM_1", "USM", "UCLA_1"]
abide = nd.load_dataset("abide-pcp", sites=SITES)
print(abide)
abide.meta.groupby("site").agg(scans=("subject", "size"), autism=("dx_group", lambda d: int((d == 1).sum())),
                              volumes=("n_times", "first"), tr=("tr", "first"),
                              age=("age", "median"), mean_fd=("mean_fd", "median"))

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
for ax, col in zip(axes, ("age", "mean_fd")):
    data = [abide.meta.loc[abide.meta["site"] == s, col] for s in SITES]
    ax.boxplot(data)
    ax.set_xticks(range(1, len(SITES) + 1), SITES)
    ax.set_title(col)
plt.suptitle("covariates differ between sites")
plt.show()

# %% [markdown]
# ## Connectomes and the site effect
#
# `Connectivity("correlation")` turns each scan into the vectorised lower
# triangle of its ROI correlation matrix (111 × 110 / 2 = 6105 features).
# How much of each feature's variance does the site explain, before and after
# ComBat harmonisation? (Here fitted on all scans, only to *look* at the
# effect; inside the pipelines below it is fitted on the training sites only.)

# %%
from neurodecode.preprocessing.confounds import ComBatHarmonizer, variance_explained
from neurodecode.preprocessing.connectivity import Connectivity

conn = Connectivity("correlation", discard_diagonal=True)
features = conn.fit_transform(abide.X)
mean_matrix = conn.mean_
harmonised = ComBatHarmonizer(covariates=("age", "sex")).fit_transform(features, meta=abide.meta)

fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
im = axes[0].imshow(mean_matrix, cmap="RdBu_r", vmin=-1, vmax=1)
axes[0].set_title("mean correlation matrix (111 HO ROIs)")
fig.colorbar(im, ax=axes[0], shrink=0.8)
r2 = [variance_explained(features, abide.meta["site"]), variance_explained(harmonised, abide.meta["site"])]
axes[1].bar(["raw", "ComBat"], r2)
axes[1].set_ylabel("variance explained by site (mean R²)")
plt.show()
print("site R²: raw %.3f, after ComBat %.3f" % tuple(r2))

# %% [markdown]
# ## Leave-site-out, with and without confound handling
#
# Three registered pipelines (`neurodecode.pipelines`):
#
# * `conn-corr-lr`: correlation → standardise → logistic regression;
# * `conn-corr-confound-lr`: the same with `ConfoundRegressor` regressing site,
#   age, sex and mean FD out of the features, fitted on the training sites;
# * `conn-corr-combat-lr`: with `ComBatHarmonizer` instead. The held-out site
#   was never seen in training, so its location/scale is estimated from its
#   own scans' features — never their labels (`unseen_site="estimate"`).
#
# The confound steps receive `meta` from the harness (scikit-learn metadata
# routing); each fold fits a fresh clone on the training sites only.

# %%
from neurodecode.evaluation import evaluate

names = ["conn-corr-lr", "conn-corr-confound-lr", "conn-corr-combat-lr"]
scores = evaluate(names, abide, split="leave-site-out", progress=False)
table = scores.pivot_table(index="site", columns="pipeline", values="score")[names]
table.loc["mean"] = table.mean()
table.round(3)

# %%
fig, ax = plt.subplots(figsize=(8, 4))
per_site = table.drop(index="mean")
x = np.arange(len(per_site))
for k, name in enumerate(names):
    ax.bar(x + (k - 1) * 0.27, per_site[name], width=0.27, label=name)
ax.axhline(0.5, color="k", ls="--", lw=1, label="chance")
ax.set_xticks(x, per_site.index)
ax.set_xlabel("held-out site")
ax.set_ylabel("ROC-AUC")
ax.set_ylim(0, 1)
ax.legend(fontsize=8, loc="lower right")
plt.show()

# %% [markdown]
# Each bar is one held-out site, scored by a model trained on the other
# three. The dataset card (`abide_pcp/SOURCE.md`) gives 0.631 mean site
# *accuracy* (not ROC-AUC) for correlation + logistic regression over all 20
# sites; with only three training sites the numbers here are noisier, and
# whether confound
# removal helps depends on how much of the diagnosis signal the covariates
# share. `neurodecode.evaluation.statistics.paired_comparison` tests such
# differences across many sites.
