r"""Confound removal that cannot leak: signal-level cleaning and sample-level regression.

Two levels, two kinds of confound:

* **Signal level** (`clean_signals`, `SignalCleaner`): nuisance *time series*
  of one fMRI run (motion parameters, white-matter / CSF signals, global
  signal, framewise displacement) are regressed out of that run's ROI series,
  with detrending, band-pass filtering and scrubbing, by
  ``nilearn.signal.clean`` (not re-implemented). Each run is cleaned alone, so
  nothing is learned across scans and nothing can leak.
* **Sample level** (`ConfoundRegressor`, `ComBatHarmonizer`): *per-scan*
  covariates in ``Trials.meta`` (site, age, sex, mean FD…) explain part of the
  features of a decoding problem. Their effect is estimated on the training
  rows of a fold and removed from the training and test rows with the
  training estimates.

Why the sample-level estimate must be fitted on the training fold only
-----------------------------------------------------------------------
A confound regression is a model: its coefficients are estimated from data.
Fitted on *all* scans before cross-validation, the coefficients are
estimated from the test scans' features and covariates too, so the
training features are adjusted with information from the test fold, and the
test features are adjusted with coefficients that were partly fitted to
themselves (their residuals are shrunk toward zero along the covariates'
directions). The score then no longer measures a model applied to new data:
in the common case where the label is correlated with a covariate, the
decoder is trained on residuals whose structure was shaped by the test labels'
covariates, and cross-validated scores are biased — usually inflated, and
sometimes pushed *below* chance (Snoek, Miletić & Scholte 2019,
NeuroImage 184; More et al. 2021). ComBat fitted on all data with the label
among its protected covariates is the classic inflated case: the site
adjustment of every test scan then depends on its own label. Inside a
scikit-learn pipeline evaluated by `neurodecode.evaluation.evaluate`, these
transformers are refitted on each training fold, which is the only unbiased
way to use them.

Confound strategies (`CONFOUND_STRATEGIES`) use fMRIPrep's column names:

========== ======================================================================
name       columns regressed out
========== ======================================================================
motion6    ``trans_x/y/z``, ``rot_x/y/z``
motion24   motion6, their temporal derivatives, and the squares of both
           (Friston et al. 1996)
wm_csf     ``white_matter``, ``csf``
gsr        ``global_signal`` (global signal regression: optional, debated)
none       nothing (detrending / filtering / scrubbing only)
========== ======================================================================

Strategies combine with ``+``: ``"motion24+wm_csf"``, ``"motion6+wm_csf+gsr"``.
Scrubbing drops volumes whose ``framewise_displacement`` exceeds
``fd_threshold`` (mm), through nilearn's ``sample_mask``.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ..errors import DataError

__all__ = [
    "CONFOUND_STRATEGIES",
    "confound_columns",
    "clean_signals",
    "SignalCleaner",
    "ConfoundRegressor",
    "ComBatHarmonizer",
    "variance_explained",
]

_MOTION6 = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")

#: Named confound strategies: name → base columns (expansion in `confound_columns`).
CONFOUND_STRATEGIES = {
    "motion6": _MOTION6,
    "motion24": _MOTION6,
    "wm_csf": ("white_matter", "csf"),
    "gsr": ("global_signal",),
    "none": (),
}


def confound_columns(strategy):
    """Base confound columns of ``strategy`` and whether Friston-24 expansion applies.

    Parameters
    ----------
    strategy : str
        One name of `CONFOUND_STRATEGIES` or several joined by ``+``.

    Returns
    -------
    columns : list of str
    friston : bool
        True when ``motion24`` is part of the strategy.

    Examples
    --------
    >>> confound_columns("motion6+gsr")
    (['trans_x', 'trans_y', 'trans_z', 'rot_x', 'rot_y', 'rot_z', 'global_signal'], False)
    """
    if not isinstance(strategy, str) or not strategy:
        raise ValueError(f"strategy={strategy!r}: expected a name among {sorted(CONFOUND_STRATEGIES)} "
                         "or several joined by '+'")
    names = [s.strip() for s in strategy.split("+")]
    unknown = [s for s in names if s not in CONFOUND_STRATEGIES]
    if unknown:
        raise ValueError(f"strategy={strategy!r}: unknown part(s) {unknown}; "
                         f"known: {sorted(CONFOUND_STRATEGIES)}")
    cols = []
    for s in names:
        cols += [c for c in CONFOUND_STRATEGIES[s] if c not in cols]
    return cols, "motion24" in names


def _confound_matrix(table, strategy, index):
    """The nuisance regressors of one run, ``(n_times, n_regressors)``, or None."""
    cols, friston = confound_columns(strategy)
    if not cols:
        return None
    if isinstance(table, np.ndarray):
        raise DataError(f"confounds[{index}] is an array: a named strategy needs a table with columns "
                        f"{cols} (fMRIPrep names); pass strategy=None to regress the array as is")
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise DataError(f"confounds[{index}] lacks column(s) {missing} needed by strategy={strategy!r}")
    base = table[cols].to_numpy(dtype=np.float64)
    if friston:
        motion = table[list(_MOTION6)].to_numpy(dtype=np.float64)
        # The first derivative is undefined at t=0; fMRIPrep leaves NaN there, we use 0.
        deriv = np.vstack([np.zeros((1, motion.shape[1])), np.diff(motion, axis=0)])
        base = np.hstack([base, deriv, motion ** 2, deriv ** 2])
    return base


def clean_signals(series_list, confounds=None, strategy="motion6", tr=None, detrend=True,
                  standardize="zscore_sample", low_pass=None, high_pass=None, fd_threshold=None,
                  min_volumes=10):
    """Clean each run's ROI series with ``nilearn.signal.clean`` (one call per run).

    Parameters
    ----------
    series_list : list of ndarray (n_rois, n_times_i) or ndarray (n_runs, n_rois, n_times)
        ROI series in neurodecode's layout (``Trials.X`` of fMRI data).
    confounds : list of (pandas.DataFrame or ndarray or None), optional
        One nuisance table per run, ``n_times_i`` rows. With a named
        ``strategy`` the tables must carry fMRIPrep column names; with
        ``strategy=None`` every column of each table/array is regressed.
    strategy : str or None
        A name of `CONFOUND_STRATEGIES` (or several joined by ``+``).
        Ignored when ``confounds`` is None.
    tr : float or sequence of float
        Repetition time (s), one for all runs or one per run (ABIDE sites
        differ: pass ``trials.meta["tr"]``). Needed for filtering.
    detrend : bool
    standardize : {"zscore_sample", "zscore", "psc", False}
        nilearn's standardisation of the cleaned series.
    low_pass, high_pass : float, optional
        Butterworth cut-offs (Hz).
    fd_threshold : float, optional
        Scrub volumes whose ``framewise_displacement`` exceeds this (mm);
        the table needs that column (its first, NaN, value counts as 0).
        Scrubbed volumes are removed, so runs come back shorter.
    min_volumes : int
        A run left with fewer volumes after scrubbing raises `DataError`.

    Returns
    -------
    list of ndarray (n_rois, n_kept_i)
        float64, same order as the input.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> motion = pd.DataFrame(rng.standard_normal((100, 6)),
    ...                       columns=["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"])
    >>> x = rng.standard_normal((4, 100)) + motion["trans_x"].to_numpy()
    >>> out = clean_signals([x], [motion], strategy="motion6", tr=2.0)
    >>> out[0].shape, bool(abs(np.corrcoef(out[0][0], motion["trans_x"])[0, 1]) < 1e-8)
    ((4, 100), True)
    """
    from nilearn.signal import clean

    from .connectivity import as_series_list

    series = as_series_list(series_list, name="series_list")
    n = len(series)
    if confounds is not None and len(confounds) != n:
        raise ValueError(f"confounds has {len(confounds)} entries for {n} runs")
    if tr is None:
        trs = [None] * n
    elif isinstance(tr, numbers.Real):
        trs = [float(tr)] * n
    else:
        trs = [float(t) for t in np.asarray(tr, dtype=np.float64).ravel()]
        if len(trs) != n:
            raise ValueError(f"tr has {len(trs)} values for {n} runs")
    if (low_pass is not None or high_pass is not None) and any(t is None or not np.isfinite(t) for t in trs):
        raise ValueError("tr is needed (finite, per run) to band-pass filter")
    if fd_threshold is not None and confounds is None:
        raise ValueError("fd_threshold needs confounds tables with a 'framewise_displacement' column")

    out = []
    for i, x in enumerate(series):
        table = None if confounds is None else confounds[i]
        regressors, mask = None, None
        if table is not None:
            if len(table) != x.shape[1]:
                raise DataError(f"confounds[{i}] has {len(table)} rows but series_list[{i}] has "
                                f"{x.shape[1]} volumes")
            if strategy is None:
                regressors = np.asarray(table, dtype=np.float64)
                regressors = regressors[:, None] if regressors.ndim == 1 else regressors
            else:
                regressors = _confound_matrix(table, strategy, i)
            if regressors is not None and not np.isfinite(regressors).all():
                raise DataError(f"confounds[{i}] has NaN or inf in the regressors of strategy={strategy!r}")
            if fd_threshold is not None:
                if not isinstance(table, pd.DataFrame) or "framewise_displacement" not in table.columns:
                    raise DataError(f"confounds[{i}] has no 'framewise_displacement' column for scrubbing")
                fd = np.nan_to_num(table["framewise_displacement"].to_numpy(dtype=np.float64), nan=0.0)
                mask = np.flatnonzero(fd <= fd_threshold)
                if len(mask) < min_volumes:
                    raise DataError(f"run {i}: {len(mask)} volumes left after scrubbing at "
                                    f"fd_threshold={fd_threshold} (< min_volumes={min_volumes})")
        cleaned = clean(x.T, detrend=detrend, standardize=standardize, confounds=regressors,
                        sample_mask=mask, low_pass=low_pass, high_pass=high_pass,
                        t_r=trs[i] if trs[i] is not None else 2.5)
        out.append(np.ascontiguousarray(cleaned.T, dtype=np.float64))
    return out


class SignalCleaner(TransformerMixin, BaseEstimator):
    """`clean_signals` as a stateless transformer (per-run nuisance tables read from ``meta``).

    Nothing is learned: each run is cleaned from its own series and its own
    nuisance table, so the transformer can sit anywhere in a pipeline.

    Parameters
    ----------
    strategy : str or None
        See `clean_signals`.
    confounds_column : str
        Column of ``meta`` holding each run's nuisance table (DataFrame);
        without ``meta`` (or without the column) no regressor is used.
    tr : float or None
        Repetition time; None reads ``meta["tr"]`` when present.
    detrend, standardize, low_pass, high_pass, fd_threshold
        See `clean_signals`.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((3, 5, 60))
    >>> [x.shape for x in SignalCleaner(strategy=None, tr=2.0, high_pass=0.01).fit_transform(X)]
    [(5, 60), (5, 60), (5, 60)]
    """

    __metadata_request__fit = {"meta": True}
    __metadata_request__transform = {"meta": True}

    def __init__(self, strategy="motion6", confounds_column="confounds", tr=None, detrend=True,
                 standardize="zscore_sample", low_pass=None, high_pass=None, fd_threshold=None):
        self.strategy = strategy
        self.confounds_column = confounds_column
        self.tr = tr
        self.detrend = detrend
        self.standardize = standardize
        self.low_pass = low_pass
        self.high_pass = high_pass
        self.fd_threshold = fd_threshold

    def fit(self, X, y=None, meta=None):
        """Check the strategy and the input; nothing is learned from the data."""
        from .connectivity import as_series_list

        if self.strategy is not None:
            confound_columns(self.strategy)
        self.n_rois_ = as_series_list(X)[0].shape[0]
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []  # always float64 out
        return tags

    def transform(self, X, meta=None):
        """Cleaned series, a list of ``(n_rois, n_kept_i)`` arrays."""
        check_is_fitted(self)
        confounds = None
        tr = self.tr
        if meta is not None:
            if self.confounds_column in meta.columns:
                confounds = list(meta[self.confounds_column])
            if tr is None and "tr" in meta.columns:
                tr = meta["tr"].to_numpy(dtype=np.float64)
        return clean_signals(X, confounds, strategy=self.strategy, tr=tr, detrend=self.detrend,
                             standardize=self.standardize, low_pass=self.low_pass, high_pass=self.high_pass,
                             fd_threshold=self.fd_threshold)

    def fit_transform(self, X, y=None, meta=None):
        return self.fit(X, y, meta=meta).transform(X, meta=meta)


# ----------------------------------------------------------------- sample level
def _require_meta(meta, columns, who, n_rows):
    if meta is None:
        raise ValueError(f"{who} needs meta (a DataFrame with column(s) {list(columns)}, one row per sample); "
                         "pass meta=trials.meta, or enable metadata routing in a Pipeline")
    if not isinstance(meta, pd.DataFrame):
        meta = pd.DataFrame(meta)
    missing = [c for c in columns if c not in meta.columns]
    if missing:
        raise ValueError(f"{who}: meta lacks column(s) {missing}; it has {list(meta.columns)}")
    if len(meta) != n_rows:
        raise ValueError(f"{who}: meta has {len(meta)} rows but X has {n_rows}")
    return meta.reset_index(drop=True)


def _is_categorical(series):
    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


class _Design:
    """Encodes meta covariates with statistics learned on training rows.

    Numeric columns are centred and scaled with the training mean / std;
    categorical columns are one-hot encoded on the training levels and
    centred by the training frequencies. Centring makes an unseen level
    (encoded as all zeros after centring, i.e. the training frequency vector)
    predict the training average of that covariate's effect, not the effect of
    an arbitrary reference level.
    """

    def __init__(self, meta, columns, categorical, who):
        self.columns = list(columns)
        self.kinds, self.stats = {}, {}
        for c in self.columns:
            cat = (c in categorical) if categorical is not None else _is_categorical(meta[c])
            if cat:
                values = meta[c].astype(str)
                levels = sorted(values.unique())
                freq = np.array([(values == v).mean() for v in levels])
                self.kinds[c], self.stats[c] = "cat", (levels, freq)
            else:
                v = meta[c].to_numpy(dtype=np.float64)
                if not np.isfinite(v).all():
                    raise ValueError(f"{who}: meta[{c!r}] has NaN or inf in the training rows")
                sd = v.std()
                self.kinds[c], self.stats[c] = "num", (v.mean(), sd if sd > 0 else 1.0)

    def encode(self, meta, who, unknown="mean"):
        blocks = []
        for c in self.columns:
            if self.kinds[c] == "num":
                v = meta[c].to_numpy(dtype=np.float64)
                if not np.isfinite(v).all():
                    raise ValueError(f"{who}: meta[{c!r}] has NaN or inf")
                mu, sd = self.stats[c]
                blocks.append(((v - mu) / sd)[:, None])
            else:
                levels, freq = self.stats[c]
                values = meta[c].astype(str).to_numpy()
                onehot = (values[:, None] == np.array(levels)[None, :]).astype(np.float64)
                unseen = onehot.sum(axis=1) == 0
                if unseen.any():
                    if unknown == "error":
                        raise ValueError(f"{who}: meta[{c!r}] has level(s) {sorted(set(values[unseen]))} "
                                         f"unseen in training (levels: {levels})")
                    onehot[unseen] = freq
                blocks.append(onehot - freq)
        return np.hstack(blocks) if blocks else np.zeros((len(meta), 0))


class ConfoundRegressor(TransformerMixin, BaseEstimator):
    r"""Remove the part of the features explained by covariates in ``meta`` (training fit only).

    In `fit`, each feature is regressed (ordinary least squares with an
    intercept) on the encoded covariates of the **training rows**:
    :math:`X = \mathbf 1 b_0 + D B + E`. `transform` returns
    :math:`X - D B` for any rows, with the training :math:`B` and the
    training encoding of :math:`D` (numeric covariates standardised with the
    training mean/std, categorical ones one-hot on the training levels,
    centred). The intercept is kept, so features keep their scale and mean.
    See the module docstring for why fitting this on all data biases scores.

    Parameters
    ----------
    confounds : sequence of str
        Columns of ``meta`` to regress out.
    categorical : sequence of str or None
        Columns to one-hot encode; None: non-numeric and boolean columns.
    handle_unknown : {"mean", "error"}
        A categorical level unseen in training (a held-out site): "mean"
        removes the training-average effect of that covariate (no site-specific
        correction is possible without the site's data); "error" raises.

    Attributes
    ----------
    coef_ : ndarray (n_design_columns, n_features)
    intercept_ : ndarray (n_features,)
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> meta = pd.DataFrame({"age": rng.uniform(8, 40, 50), "site": rng.choice(["A", "B"], 50)})
    >>> X = rng.standard_normal((50, 3)) + meta[["age"]].to_numpy()
    >>> Xc = ConfoundRegressor(confounds=("age", "site")).fit_transform(X, meta=meta)
    >>> bool(abs(np.corrcoef(Xc[:, 0], meta["age"])[0, 1]) < 1e-10)
    True
    """

    __metadata_request__fit = {"meta": True}
    __metadata_request__transform = {"meta": True}

    def __init__(self, confounds=("site", "age", "sex", "mean_fd"), categorical=None, handle_unknown="mean"):
        self.confounds = confounds
        self.categorical = categorical
        self.handle_unknown = handle_unknown

    def fit(self, X, y=None, meta=None):
        """Estimate the covariate effects on the training rows ``X`` (``meta`` aligned with them)."""
        if self.handle_unknown not in ("mean", "error"):
            raise ValueError(f"handle_unknown={self.handle_unknown!r}: expected 'mean' or 'error'")
        X = validate_data(self, X, dtype=np.float64)
        meta = _require_meta(meta, self.confounds, "ConfoundRegressor.fit", len(X))
        self.design_ = _Design(meta, self.confounds, self.categorical, "ConfoundRegressor.fit")
        D = self.design_.encode(meta, "ConfoundRegressor.fit")
        A = np.hstack([np.ones((len(X), 1)), D])
        # lstsq's minimum-norm solution handles collinear covariates (e.g. a
        # site that has a single sex) without dropping columns by hand.
        sol, *_ = np.linalg.lstsq(A, X, rcond=None)
        self.intercept_, self.coef_ = sol[0], sol[1:]
        return self

    def transform(self, X, meta=None):
        """``X`` minus the covariate effects estimated in `fit`."""
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        meta = _require_meta(meta, self.confounds, "ConfoundRegressor.transform", len(X))
        D = self.design_.encode(meta, "ConfoundRegressor.transform", unknown=self.handle_unknown)
        return X - D @ self.coef_

    def fit_transform(self, X, y=None, meta=None):
        return self.fit(X, y, meta=meta).transform(X, meta=meta)


def _site_labels(meta, site, who, n):
    if meta is None:
        # Documented fallback: without meta all rows are one site (only the
        # global location/scale standardisation then happens).
        return np.zeros(n, dtype=object).astype(str)
    if site not in meta.columns:
        raise ValueError(f"{who}: meta lacks the site column {site!r}; it has {list(meta.columns)}")
    if len(meta) != n:
        raise ValueError(f"{who}: meta has {len(meta)} rows but X has {n}")
    return meta[site].astype(str).to_numpy()


def _eb_shrink(gamma_hat, delta_hat, z_by_site, n_iter=100, tol=1e-4):
    """Parametric empirical-Bayes shrinkage of ComBat (Johnson et al. 2007), per site."""
    gamma_star, delta_star = np.empty_like(gamma_hat), np.empty_like(delta_hat)
    for i, z in enumerate(z_by_site):
        g, d = gamma_hat[i], delta_hat[i]
        n = len(z)
        gbar, t2 = g.mean(), g.var(ddof=1) if len(g) > 1 else 0.0
        m, s2 = d.mean(), d.var(ddof=1) if len(d) > 1 else 0.0
        if t2 <= 0 or s2 <= 0 or n < 2:
            gamma_star[i], delta_star[i] = g, d
            continue
        lam = (2 * s2 + m ** 2) / s2
        theta = (m * s2 + m ** 3) / s2
        g_new, d_new = g.copy(), d.copy()
        for _ in range(n_iter):
            g_next = (t2 * n * g + d_new * gbar) / (t2 * n + d_new)
            ssr = ((z - g_next) ** 2).sum(axis=0)
            d_next = (theta + 0.5 * ssr) / (n / 2.0 + lam - 1.0)
            change = max(np.max(np.abs(g_next - g_new) / np.maximum(np.abs(g_new), 1e-12)),
                         np.max(np.abs(d_next - d_new) / np.maximum(d_new, 1e-12)))
            g_new, d_new = g_next, d_next
            if change < tol:
                break
        gamma_star[i], delta_star[i] = g_new, d_new
    return gamma_star, delta_star


class ComBatHarmonizer(TransformerMixin, BaseEstimator):
    r"""ComBat site harmonisation (location/scale per site), fitted on the training rows.

    Model per feature :math:`g` and scan :math:`j` of site :math:`i`:
    :math:`x_{ijg} = \alpha_g + c_j^\top \beta_g + \gamma_{ig} + \delta_{ig}\,\sigma_g\,\varepsilon_{ijg}`.
    `fit` estimates :math:`\alpha, \beta, \sigma` by least squares on the
    training rows and the site effects :math:`\gamma_i, \delta_i` on the
    standardised residuals (shrunk across features by parametric empirical
    Bayes when ``empirical_bayes``, Johnson et al. 2007; Fortin et al. 2018).
    `transform` removes the site effects with the training estimates and keeps
    :math:`\alpha + c^\top\beta` (the protected covariates).

    A site absent from the training rows has no estimate: `transform` raises
    unless ``unseen_site="estimate"``, which estimates that site's
    :math:`\gamma, \delta` from the rows being transformed (the unlabeled
    target data, standardised with the training :math:`\alpha, \beta, \sigma`).
    That is transductive — it reads the test features, never their labels —
    and needs several rows of the site in one `transform` call.

    Never put the label among ``covariates`` when the harmonizer is fitted on
    data that includes test rows (see the module docstring).

    Parameters
    ----------
    site : str
        Column of ``meta`` naming the site (batch).
    covariates : sequence of str
        Columns of ``meta`` whose effects are protected (kept).
    categorical : sequence of str or None
        Covariates to one-hot encode; None: non-numeric ones.
    empirical_bayes : bool
    unseen_site : {"error", "estimate"}
    min_site_rows : int
        Fewest rows of an unseen site accepted by ``unseen_site="estimate"``.

    Attributes
    ----------
    sites_ : list of str
    gamma_, delta_ : ndarray (n_sites, n_features)
    alpha_, sigma_ : ndarray (n_features,)
    beta_ : ndarray (n_covariate_columns, n_features)

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> meta = pd.DataFrame({"site": np.repeat(["A", "B"], 30)})
    >>> X = rng.standard_normal((60, 4)) + np.repeat([[0.0], [3.0]], 30, axis=0)
    >>> Xh = ComBatHarmonizer().fit_transform(X, meta=meta)
    >>> bool(variance_explained(X, meta["site"]) > 0.5 > 0.05 > variance_explained(Xh, meta["site"]))
    True
    """

    __metadata_request__fit = {"meta": True}
    __metadata_request__transform = {"meta": True}

    def __init__(self, site="site", covariates=(), categorical=None, empirical_bayes=True,
                 unseen_site="error", min_site_rows=2):
        self.site = site
        self.covariates = covariates
        self.categorical = categorical
        self.empirical_bayes = empirical_bayes
        self.unseen_site = unseen_site
        self.min_site_rows = min_site_rows

    def _standardize(self, X, meta, who):
        D = self.design_.encode(meta, who, unknown="mean") if self.design_ is not None else np.zeros((len(X), 0))
        return (X - self.alpha_ - D @ self.beta_) / self.sigma_, D

    def fit(self, X, y=None, meta=None):
        """Estimate grand mean, covariate effects, pooled scale and per-site effects on the training rows."""
        if self.unseen_site not in ("error", "estimate"):
            raise ValueError(f"unseen_site={self.unseen_site!r}: expected 'error' or 'estimate'")
        X = validate_data(self, X, dtype=np.float64)
        n = len(X)
        sites = _site_labels(meta, self.site, "ComBatHarmonizer.fit", n)
        covs = list(self.covariates)
        if covs:
            meta = _require_meta(meta, covs, "ComBatHarmonizer.fit", n)
            self.design_ = _Design(meta, covs, self.categorical, "ComBatHarmonizer.fit")
            D = self.design_.encode(meta, "ComBatHarmonizer.fit")
        else:
            self.design_ = None
            D = np.zeros((n, 0))
        self.sites_ = sorted(set(sites))
        S = (sites[:, None] == np.array(self.sites_)[None, :]).astype(np.float64)
        # Site indicators without intercept + centred covariates: the site
        # coefficients are the site means; alpha is their n-weighted average.
        sol, *_ = np.linalg.lstsq(np.hstack([S, D]), X, rcond=None)
        site_means, self.beta_ = sol[:len(self.sites_)], sol[len(self.sites_):]
        counts = S.sum(axis=0)
        self.alpha_ = counts @ site_means / n
        resid = X - S @ site_means - D @ self.beta_
        sigma = np.sqrt((resid ** 2).mean(axis=0))
        self.sigma_ = np.where(sigma > 0, sigma, 1.0)
        Z = (X - self.alpha_ - D @ self.beta_) / self.sigma_
        z_by_site = [Z[sites == s] for s in self.sites_]
        self.gamma_, self.delta_ = self._site_effects(z_by_site)
        return self

    def _site_effects(self, z_by_site):
        gamma = np.stack([z.mean(axis=0) for z in z_by_site])
        delta = np.stack([z.var(axis=0, ddof=1) if len(z) > 1 else np.ones(z.shape[1]) for z in z_by_site])
        delta = np.where(delta > 0, delta, 1.0)
        if self.empirical_bayes:
            gamma, delta = _eb_shrink(gamma, delta, z_by_site)
        return gamma, delta

    def transform(self, X, meta=None):
        """Site-harmonised ``X`` (training estimates; see ``unseen_site`` for new sites)."""
        check_is_fitted(self, "gamma_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        n = len(X)
        sites = _site_labels(meta, self.site, "ComBatHarmonizer.transform", n)
        if self.design_ is not None:
            meta = _require_meta(meta, self.covariates, "ComBatHarmonizer.transform", n)
        Z, D = self._standardize(X, meta, "ComBatHarmonizer.transform")
        out = np.empty_like(Z)
        index = {s: i for i, s in enumerate(self.sites_)}
        unseen = sorted(set(sites) - set(index))
        if unseen and self.unseen_site == "error":
            raise ValueError(f"ComBatHarmonizer.transform: site(s) {unseen} were not in the training rows "
                             f"(trained on {self.sites_}). Their site effects cannot be removed with training "
                             "estimates; pass unseen_site='estimate' to estimate them from these (unlabeled) rows")
        for s in sorted(set(sites)):
            rows = sites == s
            if s in index:
                g, d = self.gamma_[index[s]], self.delta_[index[s]]
            else:
                if rows.sum() < self.min_site_rows:
                    raise ValueError(f"ComBatHarmonizer.transform: unseen site {s!r} has {rows.sum()} row(s); "
                                     f"unseen_site='estimate' needs at least min_site_rows={self.min_site_rows}")
                g, d = self._site_effects([Z[rows]])
                g, d = g[0], d[0]
            out[rows] = (Z[rows] - g) / np.sqrt(d)
        return out * self.sigma_ + self.alpha_ + D @ self.beta_

    def fit_transform(self, X, y=None, meta=None):
        return self.fit(X, y, meta=meta).transform(X, meta=meta)


def variance_explained(X, groups):
    r"""Mean over features of the fraction of variance explained by ``groups`` (one-way :math:`R^2`).

    :math:`R^2_g = \sum_i n_i (\bar x_{ig} - \bar x_g)^2 / \sum_j (x_{jg} - \bar x_g)^2`,
    averaged over features :math:`g` (features with zero variance are skipped).

    Parameters
    ----------
    X : ndarray (n_samples, n_features)
    groups : array-like (n_samples,)
        E.g. ``meta["site"]``.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> variance_explained(np.array([[0.0], [0.0], [1.0], [1.0]]), ["a", "a", "b", "b"])
    1.0
    """
    X = check_array(X, dtype=np.float64)
    groups = np.asarray(groups).astype(str)
    if len(groups) != len(X):
        raise ValueError(f"groups has {len(groups)} values for {len(X)} rows")
    centred = X - X.mean(axis=0)
    total = (centred ** 2).sum(axis=0)
    between = np.zeros(X.shape[1])
    for g in np.unique(groups):
        rows = groups == g
        between += rows.sum() * centred[rows].mean(axis=0) ** 2
    keep = total > 0
    return float(np.mean(between[keep] / total[keep]))
