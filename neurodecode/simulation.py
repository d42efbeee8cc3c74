"""Simulators with known ground truth, for unit tests and examples.

Three generators, each returning `Trials` (or a dict of them) and fixed by
``random_state``:

* `simulate_eeg` — multi-subject EEG-like epochs whose *source covariance*
  depends on the class, mixed into channels by a subject-specific matrix
  (a shared base mixing plus a subject perturbation): within-subject decoding
  is easy, cross-subject transfer is hard but possible, and re-centering each
  subject's covariances helps.
* `simulate_fmri` — ROI time series of variable length with a planted
  connectivity difference between two groups on a known set of ROI pairs, plus
  site effects (site-specific ROI scaling and site-specific extra edges).
* `simulate_nsd` — NSD-style single-trial betas: a shared latent stimulus code
  ``z(stimulus)`` mapped through subject-specific maps ``W_s`` to a
  subject-specific number of voxels.

Ground truth is returned on request with ``return_truth=True``: the function
then returns ``(trials, truth)`` where ``truth`` is a dict documented in each
function. Without it, the registry (``load_dataset("sim-eeg")``…) gets plain
`Trials`.

Signals are in arbitrary units (order 1), not volts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import signal as sp_signal
from sklearn.utils import check_random_state

from .trials import Trials

__all__ = ["simulate_eeg", "simulate_fmri", "simulate_nsd"]

# 10-20 / 10-10 names so that scalp-region tokenization works on simulated EEG.
_EEG_NAMES = (
    "Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T7", "C3", "Cz", "C4", "T8",
    "P7", "P3", "Pz", "P4", "P8", "O1", "Oz", "O2", "FC5", "FC1", "FC2", "FC6",
    "CP5", "CP1", "CP2", "CP6", "AF3", "AF4", "PO3", "PO4",
)


def _eeg_channel_names(n_channels):
    if n_channels <= len(_EEG_NAMES):
        return list(_EEG_NAMES[:n_channels])
    return [f"EEG{i:03d}" for i in range(n_channels)]


def _ar1(rng, shape, phi):
    """Unit-variance AR(1) noise along the last axis."""
    e = rng.standard_normal(shape)
    out = sp_signal.lfilter([np.sqrt(1 - phi**2)], [1.0, -phi], e, axis=-1)
    return out


def _check_positive_int(value, name):
    if not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r}: expected a positive integer")
    return int(value)


def simulate_eeg(
    n_subjects=10,
    n_trials=60,
    n_channels=16,
    n_times=256,
    sfreq=128.0,
    n_classes=2,
    class_sep=1.0,
    subject_shift=1.0,
    noise=0.1,
    random_state=None,
    return_truth=False,
):
    r"""Simulate multi-subject EEG epochs with a class-dependent covariance.

    Generative model for subject :math:`s`, trial :math:`i` of class :math:`c`:

    .. math::

        x_i(t) = A_s\, D_i^{1/2} s_i(t) + \sigma\, e_i(t), \qquad
        A_s = A_0 + \delta\, G_s / \sqrt{n}

    where :math:`s_i(t)` are ``n_channels`` unit-variance sources (the first
    ``n_classes`` band-passed to 8–30 Hz when ``sfreq`` allows, the rest
    AR(1) noise), :math:`D_i` is diagonal with :math:`D_{cc} = e^{\text{class\_sep}}`
    for the source of the trial's class, 1 for the other sources, times a
    per-trial log-normal jitter and a per-subject log-normal source power,
    :math:`A_0` is a base mixing shared by all subjects, :math:`G_s` a
    standard normal perturbation scaled by :math:`\delta` = ``subject_shift``,
    and :math:`e_i` white sensor noise of level ``noise``.

    The class information therefore lives in the channel covariance
    :math:`A_s D_i A_s^\top`, seen through a different mixing per subject.

    Parameters
    ----------
    n_subjects, n_trials, n_channels, n_times : int
        Trials per subject are balanced across classes (``n_trials`` per subject).
    sfreq : float
        Sampling rate in Hz.
    n_classes : int
        Number of classes (at most ``n_channels``).
    class_sep : float
        Log variance ratio of the class source (0: no class information).
    subject_shift : float
        Size of the subject-specific mixing perturbation (0: same mixing).
    noise : float
        Standard deviation of the white sensor noise.
    random_state : int, RandomState or None
    return_truth : bool
        Also return the ground truth.

    Returns
    -------
    trials : Trials
        ``X`` of shape ``(n_subjects * n_trials, n_channels, n_times)``,
        ``y`` integer class labels, ``meta`` with ``subject`` (1…n), ``session``
        and ``run`` (``"0"``), ``ch_names`` 10-20 names when ``n_channels <= 32``.
    truth : dict, only with ``return_truth=True``
        ``"base_mixing"`` ``(n_channels, n_channels)``; ``"mixing"`` dict
        subject → ``A_s``; ``"class_sources"`` indices of the class sources.

    Examples
    --------
    >>> from neurodecode.simulation import simulate_eeg
    >>> t = simulate_eeg(n_subjects=2, n_trials=10, random_state=0)
    >>> t.X.shape
    (20, 16, 256)
    """
    n_subjects = _check_positive_int(n_subjects, "n_subjects")
    n_trials = _check_positive_int(n_trials, "n_trials")
    n_channels = _check_positive_int(n_channels, "n_channels")
    n_times = _check_positive_int(n_times, "n_times")
    n_classes = _check_positive_int(n_classes, "n_classes")
    if n_classes < 2 or n_classes > n_channels:
        raise ValueError(f"n_classes={n_classes}: expected 2 <= n_classes <= n_channels={n_channels}")
    rng = check_random_state(random_state)

    base = rng.standard_normal((n_channels, n_channels)) / np.sqrt(n_channels)
    band = None
    if sfreq / 2 > 32:
        band = sp_signal.butter(4, [8.0, 30.0], btype="bandpass", fs=sfreq, output="sos")

    X, y, subjects, mixing = [], [], [], {}
    for subj in range(1, n_subjects + 1):
        A = base + subject_shift * rng.standard_normal((n_channels, n_channels)) / np.sqrt(n_channels)
        mixing[subj] = A
        src_power = np.exp(0.3 * subject_shift * rng.standard_normal(n_channels))
        labels = np.resize(np.arange(n_classes), n_trials)
        rng.shuffle(labels)
        sources = _ar1(rng, (n_trials, n_channels, n_times), 0.5)
        if band is not None:
            sources[:, :n_classes] = sp_signal.sosfiltfilt(band, sources[:, :n_classes], axis=-1)
            sources[:, :n_classes] /= sources[:, :n_classes].std(axis=-1, keepdims=True)
        logvar = 0.2 * rng.standard_normal((n_trials, n_channels))
        logvar[np.arange(n_trials), labels] += class_sep
        amp = np.sqrt(src_power * np.exp(logvar))
        x = np.einsum("ij,njt->nit", A, amp[:, :, None] * sources)
        x += noise * rng.standard_normal(x.shape)
        X.append(x)
        y.append(labels)
        subjects.append(np.full(n_trials, subj))

    meta = pd.DataFrame({"subject": np.concatenate(subjects), "session": "0", "run": "0"})
    trials = Trials(
        np.concatenate(X), y=np.concatenate(y), meta=meta, sfreq=sfreq,
        ch_names=_eeg_channel_names(n_channels), modality="eeg", name="sim-eeg",
    )
    if return_truth:
        return trials, {"base_mixing": base, "mixing": mixing, "class_sources": np.arange(n_classes)}
    return trials


def _draw_edges(rng, n_rois, n_edges, exclude=()):
    """Distinct unordered ROI pairs (i < j), none in ``exclude``."""
    taken = {tuple(sorted(e)) for e in exclude}
    edges = []
    while len(edges) < n_edges:
        i, j = sorted(rng.choice(n_rois, 2, replace=False))
        if (i, j) not in taken:
            taken.add((i, j))
            edges.append((int(i), int(j)))
    return np.array(edges, dtype=np.int64).reshape(-1, 2)


def simulate_fmri(
    n_subjects=60,
    n_rois=20,
    n_times=(100, 150),
    n_sites=3,
    effect_size=0.5,
    site_effect=0.5,
    n_planted=4,
    n_site_edges=3,
    tr=2.0,
    random_state=None,
    return_truth=False,
):
    r"""Simulate resting-state ROI series with a planted group difference and site effects.

    Each scan is ``n_rois`` ROI series of a length drawn uniformly in
    ``n_times`` (inclusive), built from AR(1) latent signals (:math:`\phi = 0.5`):

    .. math::

        x(t) = \Lambda f(t) + \sum_{(i,j) \in P} \sqrt{a}\,\big(u_{ij}(t) e_i + v_{ij}(t) e_j\big)
               + \sum_{(k,l) \in S_{site}} \sqrt{b}\, w_{kl}(t) (e_k + e_l) + \varepsilon(t)

    then scaled ROI-wise by a site factor :math:`\exp(0.3\,b\,g_{site})` and shifted by a
    site offset. :math:`\Lambda f` (3 shared factors) gives a baseline connectivity
    common to everybody. For the planted pairs :math:`P`, group 1 has
    :math:`u_{ij} = v_{ij}` (a shared signal: correlation goes up), group 0 has
    independent :math:`u_{ij}, v_{ij}` — so both groups have the **same ROI
    variances** and differ only in the correlation of the planted pairs.
    Each site adds its own shared signals on ``n_site_edges`` pairs
    :math:`S_{site}` (disjoint from :math:`P`), amplitude :math:`b` = ``site_effect``.
    Groups are balanced within each site, so site is not a label confound here.

    Parameters
    ----------
    n_subjects : int
        One scan per subject.
    n_rois : int
    n_times : int or (int, int)
        Scan length, or the inclusive range lengths are drawn from (ragged X).
    n_sites : int
    effect_size : float
        Variance :math:`a` of the planted shared signal (0: no group difference).
    site_effect : float
        Strength :math:`b` of the site effects (0: none).
    n_planted, n_site_edges : int
        Number of planted group edges, and of extra edges per site.
    tr : float
        Repetition time in seconds (``sfreq = 1 / tr``).
    random_state : int, RandomState or None
    return_truth : bool
        Also return the ground truth.

    Returns
    -------
    trials : Trials
        ``X`` a list of ``(n_rois, n_times_i)`` arrays (an array when all
        lengths are equal), ``y`` the group (0/1), ``meta`` with ``subject``
        (``"sub-001"``…), ``session``/``run`` ``"0"``, ``site`` (``"site1"``…),
        ``age`` (site-dependent mean), ``sex`` (``"M"``/``"F"``) and
        ``mean_fd``; ``ch_names`` ``"roi00"``….
    truth : dict, only with ``return_truth=True``
        ``"planted_edges"`` ``(n_planted, 2)`` ROI index pairs (i < j) whose
        correlation is higher in group 1; ``"site_edges"`` dict site →
        ``(n_site_edges, 2)`` pairs; ``"site_scale"`` dict site → ``(n_rois,)``.

    Examples
    --------
    >>> from neurodecode.simulation import simulate_fmri
    >>> t, truth = simulate_fmri(n_subjects=6, random_state=0, return_truth=True)
    >>> len(t.X), t.X[0].shape[0], truth["planted_edges"].shape
    (6, 20, (4, 2))
    """
    n_subjects = _check_positive_int(n_subjects, "n_subjects")
    n_rois = _check_positive_int(n_rois, "n_rois")
    n_sites = _check_positive_int(n_sites, "n_sites")
    if np.ndim(n_times) == 0:
        lo = hi = int(n_times)
    else:
        lo, hi = (int(v) for v in n_times)
    if lo < 2 or hi < lo:
        raise ValueError(f"n_times={n_times!r}: expected a length >= 2 or a range (low, high), low <= high")
    if n_planted + n_sites * n_site_edges > n_rois * (n_rois - 1) // 2:
        raise ValueError(f"n_rois={n_rois} is too small for {n_planted} planted and {n_site_edges} site edges per site")
    rng = check_random_state(random_state)

    planted = _draw_edges(rng, n_rois, n_planted)
    site_names = [f"site{k + 1}" for k in range(n_sites)]
    site_edges, used = {}, [tuple(e) for e in planted]
    for s in site_names:
        site_edges[s] = _draw_edges(rng, n_rois, n_site_edges, exclude=used)
        used += [tuple(e) for e in site_edges[s]]
    site_scale = {s: np.exp(0.3 * site_effect * rng.standard_normal(n_rois)) for s in site_names}
    site_offset = {s: site_effect * rng.standard_normal(n_rois) for s in site_names}
    site_fd = {s: 0.1 + 0.1 * rng.random() for s in site_names}
    site_age = {s: 12.0 + 20.0 * rng.random() for s in site_names}
    loadings = rng.standard_normal((n_rois, 3)) * 0.5

    site = np.array(site_names)[np.arange(n_subjects) % n_sites]
    rng.shuffle(site)
    y = np.zeros(n_subjects, dtype=np.int64)
    for s in site_names:
        idx = np.flatnonzero(site == s)
        y[idx] = rng.permutation(np.resize([0, 1], len(idx)))
    lengths = rng.randint(lo, hi + 1, size=n_subjects)

    X = []
    a, b = np.sqrt(effect_size), np.sqrt(site_effect)
    for n in range(n_subjects):
        T, s = int(lengths[n]), site[n]
        x = loadings @ _ar1(rng, (3, T), 0.5) + _ar1(rng, (n_rois, T), 0.5)
        for i, j in planted:
            u = _ar1(rng, T, 0.5)
            v = u if y[n] == 1 else _ar1(rng, T, 0.5)
            x[i] += a * u
            x[j] += a * v
        for k, l in site_edges[s]:
            w = b * _ar1(rng, T, 0.5)
            x[k] += w
            x[l] += w
        x = site_scale[s][:, None] * x + site_offset[s][:, None]
        X.append(x)

    meta = pd.DataFrame({
        "subject": [f"sub-{n + 1:03d}" for n in range(n_subjects)],
        "session": "0",
        "run": "0",
        "site": site,
        "age": np.array([site_age[s] for s in site]) + 3.0 * rng.standard_normal(n_subjects),
        "sex": np.where(rng.random(n_subjects) < 0.5, "M", "F"),
        "mean_fd": np.array([site_fd[s] for s in site]) * rng.lognormal(0.0, 0.3, n_subjects),
    })
    if lo == hi:
        X = np.stack(X)
    trials = Trials(X, y=y, meta=meta, sfreq=1.0 / tr, ch_names=[f"roi{r:02d}" for r in range(n_rois)],
                    modality="fmri", name="sim-fmri")
    if return_truth:
        return trials, {"planted_edges": planted, "site_edges": site_edges, "site_scale": site_scale}
    return trials


def simulate_nsd(
    n_subjects=4,
    n_stimuli=200,
    n_trials_per_subject=300,
    n_voxels=(800, 1200),
    latent_dim=16,
    noise=1.0,
    n_classes=2,
    random_state=None,
    return_truth=False,
):
    r"""Simulate NSD-style single-trial betas from a shared latent stimulus code.

    Each stimulus :math:`k` has a latent code :math:`z_k \sim \mathcal N(0, I_d)`
    (``d = latent_dim``) shared by all subjects; subject :math:`s` has
    :math:`V_s` voxels (drawn in ``n_voxels``) and a map
    :math:`W_s \in \mathbb R^{d \times V_s}` with entries :math:`\mathcal N(0, 1/d)`:

    .. math:: \beta_{s,i} = z_{k(i)} W_s + \sigma\, \varepsilon_{s,i}

    with :math:`\sigma` = ``noise``. Every subject sees every stimulus at least
    once (when ``n_trials_per_subject >= n_stimuli``), the rest are repeats.

    Parameters
    ----------
    n_subjects, n_stimuli, n_trials_per_subject : int
    n_voxels : int or (int, int)
        Voxel count, or the inclusive range each subject's count is drawn from.
    latent_dim : int
    noise : float
    n_classes : int
        Number of stimulus categories: the category of stimulus :math:`k`
        is :math:`\arg\max_c z_{k,c}` over the first ``n_classes`` latent
        dimensions, so it is decodable from the betas.
    random_state : int, RandomState or None
    return_truth : bool
        Also return the ground truth.

    Returns
    -------
    trials : dict
        subject (``"subj01"``…) → `Trials` with ``X`` ``(n_trials, V_s)``,
        ``y`` the stimulus category, ``meta["stimulus"]`` the stimulus index
        (0…n_stimuli-1), ``session`` (blocks of 100 trials) and ``run`` ``"0"``.
    truth : dict, only with ``return_truth=True``
        ``"latents"`` ``(n_stimuli, latent_dim)``; ``"maps"`` subject → ``W_s``;
        ``"categories"`` ``(n_stimuli,)``.

    Examples
    --------
    >>> from neurodecode.simulation import simulate_nsd
    >>> data = simulate_nsd(n_subjects=2, n_stimuli=20, n_trials_per_subject=30,
    ...                     n_voxels=(50, 60), random_state=0)
    >>> sorted(data), data["subj01"].X.shape[0]
    (['subj01', 'subj02'], 30)
    """
    n_subjects = _check_positive_int(n_subjects, "n_subjects")
    n_stimuli = _check_positive_int(n_stimuli, "n_stimuli")
    n_trials_per_subject = _check_positive_int(n_trials_per_subject, "n_trials_per_subject")
    latent_dim = _check_positive_int(latent_dim, "latent_dim")
    if not 2 <= n_classes <= latent_dim:
        raise ValueError(f"n_classes={n_classes}: expected 2 <= n_classes <= latent_dim={latent_dim}")
    if np.ndim(n_voxels) == 0:
        vlo = vhi = int(n_voxels)
    else:
        vlo, vhi = (int(v) for v in n_voxels)
    if vlo < 1 or vhi < vlo:
        raise ValueError(f"n_voxels={n_voxels!r}: expected a count >= 1 or a range (low, high), low <= high")
    rng = check_random_state(random_state)

    Z = rng.standard_normal((n_stimuli, latent_dim))
    categories = np.argmax(Z[:, :n_classes], axis=1)
    out, maps = {}, {}
    for s in range(1, n_subjects + 1):
        name = f"subj{s:02d}"
        V = int(rng.randint(vlo, vhi + 1))
        W = rng.standard_normal((latent_dim, V)) / np.sqrt(latent_dim)
        maps[name] = W
        n_extra = max(0, n_trials_per_subject - n_stimuli)
        stim = np.concatenate([rng.permutation(n_stimuli), rng.randint(0, n_stimuli, n_extra)])
        stim = rng.permutation(stim[:n_trials_per_subject])
        betas = Z[stim] @ W + noise * rng.standard_normal((len(stim), V))
        meta = pd.DataFrame({
            "subject": name,
            "session": (np.arange(len(stim)) // 100 + 1).astype(str),
            "run": "0",
            "stimulus": stim.astype(np.int64),
        })
        out[name] = Trials(betas, y=categories[stim], meta=meta, sfreq=np.nan, modality="fmri", name="sim-nsd")
    if return_truth:
        return out, {"latents": Z, "maps": maps, "categories": categories}
    return out
