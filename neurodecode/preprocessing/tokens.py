r"""Region tokens for the three modalities: one interface, several spatial scales.

A *token* is a group of channels (EEG electrodes, iEEG contacts, fMRI ROIs)
whose signals are averaged into one series; a model then sees
``(n_trials, n_tokens, n_times)`` plus each token's name, position and
members (`Tokens`). `patch_tokens` cuts each token's series into
overlapping windows: ``(n_trials, n_tokens, n_patches, patch_len)``, the
(token, time-patch) grid of patch-based models. The spatial scale is a
setting (BaRISTA's point: the encoding scale matters):

================ ========== ===============================================================
scale            modality   one token per
================ ========== ===============================================================
``"channel"``    all        channel / contact / ROI (fMRI: one token per atlas parcel)
``"region"``     EEG        scalp region × hemisphere: frontal, central, parietal,
                            occipital, temporal × left / midline / right (10-05 names)
``"parcel"``     iEEG       spatial cluster of contacts *within* a lobe (k-means on the
                            coordinates), or the label of a user label image
``"lobe"``       iEEG       lobe × hemisphere from MNI coordinates (`mni_lobe`)
``"groups"``     all        user mapping ``{token: [channels]}`` (fMRI networks), or
                            ``"harvard-oxford-lobes"`` for the HO-111 ROIs of ABIDE PCP
================ ========== ===============================================================

Channel → parcel → lobe is a hierarchy: parcels are clustered inside each lobe,
so every parcel belongs to exactly one lobe.

No atlas is downloaded (none can be at run time). Lobes come from coarse
MNI-coordinate rules (`mni_lobe`, documented there); "parcels" are k-means
clusters of contact coordinates, or the labels of a label image you provide
(``label_image=``, any NIfTI in the coordinates' space).

**Missing coordinates** (contacts absent from the electrode table, DC or EKG
inputs): at the ``"parcel"`` and ``"lobe"`` scales a channel without
coordinates cannot be placed. ``missing="own"`` (default) keeps it as a token
of its own named after the channel, ``"drop"`` removes it, ``"error"``
raises. EEG regions are read from the channel *names* (10-20/10-05 system,
PhysioNet's ``"Fc5."`` spelling included); a name that does not parse falls
back to the nearest ``standard_1005`` electrode to its position, then to
``missing``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..trials import Trials

__all__ = [
    "Tokens",
    "RegionTokenizer",
    "tokenize",
    "patch_tokens",
    "scalp_region",
    "mni_lobe",
    "harvard_oxford_lobes",
    "SCALP_REGIONS",
    "LOBES",
]

SCALP_REGIONS = ("frontal", "central", "parietal", "occipital", "temporal")
LOBES = ("frontal", "temporal", "parietal", "occipital", "insula", "subcortical")

# 10-05 prefixes → scalp region. FC/C count as central, CP/P as parietal,
# FT/T/TP as temporal, PO/O/I as occipital.
_PREFIX_REGION = {
    "FP": "frontal", "AF": "frontal", "F": "frontal", "AFF": "frontal", "FFC": "frontal", "FFT": "frontal",
    "FC": "central", "C": "central", "FCC": "central", "CCP": "central",
    "CP": "parietal", "P": "parietal", "CPP": "parietal", "PPO": "parietal",
    "PO": "occipital", "O": "occipital", "I": "occipital", "POO": "occipital", "OI": "occipital",
    "FT": "temporal", "T": "temporal", "TP": "temporal", "FTT": "temporal", "TTP": "temporal", "TPP": "temporal",
}
_EEG_NAME = re.compile(r"^([A-Z]+?)(\d+|Z)H?$")


@dataclass
class Tokens:
    """Token signals with their names, positions and member channels.

    Attributes
    ----------
    X : ndarray (n_trials, n_tokens, n_times or n_features)
    token_names : list of str
    token_positions : ndarray (n_tokens, 3) or None
        Mean position of the members (NaN for tokens without one), in the
        input's units and frame.
    groups : list of list of str
        The channels averaged into each token.
    scale : str
    sfreq : float
    y, meta
        Passed through from the `Trials`.
    """

    X: np.ndarray
    token_names: list
    token_positions: np.ndarray | None
    groups: list
    scale: str
    sfreq: float = float("nan")
    y: np.ndarray | None = None
    meta: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def n_tokens(self) -> int:
        return len(self.token_names)

    def counts(self) -> dict:
        """``{token name: number of member channels}``."""
        return {n: len(g) for n, g in zip(self.token_names, self.groups)}


# ----------------------------------------------------------------- assignments
def _clean_eeg_name(name):
    return str(name).strip().strip(".").upper().replace("EEG", "").strip()


def scalp_region(name):
    """``(region, hemisphere)`` of a 10-20 / 10-05 electrode name, or None when it does not parse.

    Odd numbers are left, even numbers right, ``z`` midline.

    Examples
    --------
    >>> scalp_region("Fc5."), scalp_region("Cz"), scalp_region("TP8"), scalp_region("EKG")
    (('central', 'left'), ('central', 'midline'), ('temporal', 'right'), None)
    """
    m = _EEG_NAME.match(_clean_eeg_name(name))
    if not m or m.group(1) not in _PREFIX_REGION:
        return None
    num = m.group(2)
    hemi = "midline" if num == "Z" else ("left" if int(num) % 2 else "right")
    return _PREFIX_REGION[m.group(1)], hemi


_STD_1005 = None


def _nearest_1005(position):
    """Name of the standard_1005 electrode nearest to a head-frame position (m); MNE ships the montage."""
    global _STD_1005
    if _STD_1005 is None:  # read-only table of a file shipped with MNE, not fitted state
        import mne

        pos = mne.channels.make_standard_montage("standard_1005").get_positions()["ch_pos"]
        _STD_1005 = (list(pos), np.array(list(pos.values())))
    names, xyz = _STD_1005
    return names[int(np.argmin(np.linalg.norm(xyz - position, axis=1)))]


def mni_lobe(xyz_mm, midline_mm=2.0):
    """Coarse lobe × hemisphere of MNI coordinates (millimetres), by landmark rules.

    Rules, in order (first match wins; MNI axes: x right, y anterior, z superior):

    1. ``subcortical``: ``|x| < 25``, ``-30 < y < 20``, ``-15 < z < 20`` (basal ganglia, thalamus);
    2. ``insula``: ``25 <= |x| <= 42``, ``-15 <= y <= 25``, ``-5 <= z <= 22``;
    3. ``occipital``: ``y < -72`` (parieto-occipital boundary);
    4. ``temporal``: ``z < 10`` and ``y < 25`` (below the Sylvian fissure);
    5. ``frontal``: ``y >= -18`` (anterior to the central sulcus, coarse);
    6. ``parietal``: otherwise.

    Hemisphere: ``left`` for ``x < -midline_mm``, ``right`` for
    ``x > midline_mm``, else ``midline``. These are approximations good to a
    lobe, not an atlas lookup: pass a ``label_image`` to `RegionTokenizer`
    for anatomical labels.

    Parameters
    ----------
    xyz_mm : array (n, 3) or (3,)

    Returns
    -------
    list of (lobe, hemisphere)

    Examples
    --------
    >>> mni_lobe([[-40, 30, 30], [50, -20, -10], [10, -90, 5], [-20, -30, 60]])
    [('frontal', 'left'), ('temporal', 'right'), ('occipital', 'right'), ('parietal', 'left')]
    """
    xyz = np.atleast_2d(np.asarray(xyz_mm, dtype=np.float64))
    out = []
    for x, y, z in xyz:
        ax = abs(x)
        if ax < 25 and -30 < y < 20 and -15 < z < 20:
            lobe = "subcortical"
        elif 25 <= ax <= 42 and -15 <= y <= 25 and -5 <= z <= 22:
            lobe = "insula"
        elif y < -72:
            lobe = "occipital"
        elif z < 10 and y < 25:
            lobe = "temporal"
        elif y >= -18:
            lobe = "frontal"
        else:
            lobe = "parietal"
        hemi = "left" if x < -midline_mm else ("right" if x > midline_mm else "midline")
        out.append((lobe, hemi))
    return out


# Harvard-Oxford cortical atlas (48 regions, FSL order) → lobe; ABIDE PCP labels
# are 100 * index + hemisphere digit, subcortical ones are FreeSurfer codes < 100.
_HO_CORTICAL_LOBE = {
    **{i: "frontal" for i in (1, 3, 4, 5, 6, 7, 25, 26, 27, 28, 33, 41)},
    **{i: "temporal" for i in (8, 9, 10, 11, 12, 13, 14, 15, 16, 34, 35, 37, 38, 44, 45, 46)},
    **{i: "parietal" for i in (17, 18, 19, 20, 21, 31, 43)},
    **{i: "occipital" for i in (22, 23, 24, 32, 36, 39, 40, 47, 48)},
    **{i: "insula" for i in (2, 42)},
    **{i: "cingulate" for i in (29, 30)},
}


def harvard_oxford_lobes(roi_labels):
    """Group ABIDE PCP Harvard-Oxford ROI labels (``"10"``… ``"4802"``) into lobes.

    Labels below 100 are the subcortical (FreeSurfer-coded) ROIs; a label
    ``100 k + h`` is cortical region ``k`` (1–48, FSL's HO order) of hemisphere
    ``h``. Returns ``{group: [labels]}`` (groups in `LOBES` order plus
    ``cingulate``); labels that fit neither rule (e.g. ``"3455"``) are left
    out (they become their own tokens under ``missing="own"``).

    Examples
    --------
    >>> harvard_oxford_lobes(["10", "101", "202", "2101"])
    {'frontal': ['101'], 'insula': ['202'], 'parietal': ['2101'], 'subcortical': ['10']}
    """
    groups = {}
    for lab in roi_labels:
        v = int(lab)
        if v < 100:
            g = "subcortical"
        elif v % 100 in (1, 2) and v // 100 in _HO_CORTICAL_LOBE:
            g = _HO_CORTICAL_LOBE[v // 100]
        else:
            continue
        groups.setdefault(g, []).append(str(lab))
    return dict(sorted(groups.items()))


def _label_image_lookup(label_image, xyz, label_names):
    import nibabel as nib

    img = nib.load(label_image) if isinstance(label_image, (str, bytes)) or hasattr(label_image, "__fspath__") \
        else label_image
    data = np.asarray(img.dataobj)
    inv = np.linalg.inv(img.affine)
    ijk = np.rint((np.c_[xyz, np.ones(len(xyz))] @ inv.T)[:, :3]).astype(int)
    inside = np.all((ijk >= 0) & (ijk < np.array(data.shape[:3])), axis=1)
    labels = []
    for ok, (i, j, k) in zip(inside, ijk):
        v = int(data[i, j, k]) if ok else 0
        labels.append(None if v == 0 else (label_names or {}).get(v, f"label-{v}"))
    return labels


# ----------------------------------------------------------------- tokenizer
def _positions_mm(positions, coord_frame):
    if positions is None:
        return None
    p = np.asarray(positions, dtype=np.float64)
    # Trials keep MNE's metres; rules and label images use millimetres.
    finite = p[np.isfinite(p).all(1)]
    return p * 1000.0 if len(finite) and np.abs(finite).max() < 1.0 else p


class RegionTokenizer(TransformerMixin, BaseEstimator):
    """Average channels into region tokens at a chosen spatial scale (see the module docstring).

    `fit` works out the groups from channel names and positions (read from a
    `Trials`, or given as ``ch_names`` / ``positions`` for arrays); nothing is
    learned from the signals, so it cannot leak. `transform` averages each
    group: an array in gives ``(n_trials, n_tokens, n_times)``, a `Trials` in
    gives a `Tokens`.

    Parameters
    ----------
    scale : {"channel", "region", "parcel", "lobe", "groups"}
    groups : dict or "harvard-oxford-lobes", optional
        For ``scale="groups"``: ``{token name: [channel names]}``.
    channels_per_parcel : int
        Target contacts per parcel: each lobe is split into
        ``ceil(n / channels_per_parcel)`` k-means clusters.
    label_image : path or nibabel image, optional
        For ``scale="parcel"``: a label volume in the coordinates' space;
        each contact takes the label of its voxel (0 = unlabelled → missing).
    label_names : dict, optional
        ``{label value: name}`` for ``label_image``.
    missing : {"own", "drop", "error"}
        What to do with a channel that cannot be placed.
    assume_mni : bool
        Coordinates whose frame is not MNI (``"mni_tal"``) are refused at the
        ``"lobe"``/``"parcel"`` scales unless this is True (the lobe rules are
        MNI rules; e.g. MNE's sample ECoG is in its subject's head frame).
    ch_names, positions, coord_frame : optional
        Channel information for array input.
    random_state : int
        k-means seed.

    Attributes
    ----------
    token_names_ : list of str
    groups_ : list of list of int
        Channel indices of each token.
    token_positions_ : ndarray (n_tokens, 3) or None

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((2, 4, 50))
    >>> tok = RegionTokenizer("region", ch_names=["F3", "F4", "C3", "Cz"]).fit(X)
    >>> tok.token_names_, tok.transform(X).shape
    (['frontal-left', 'frontal-right', 'central-left', 'central-midline'], (2, 4, 50))
    """

    def __init__(self, scale="channel", groups=None, channels_per_parcel=8, label_image=None, label_names=None,
                 missing="own", assume_mni=False, ch_names=None, positions=None, coord_frame=None, random_state=0):
        self.scale = scale
        self.groups = groups
        self.channels_per_parcel = channels_per_parcel
        self.label_image = label_image
        self.label_names = label_names
        self.missing = missing
        self.assume_mni = assume_mni
        self.ch_names = ch_names
        self.positions = positions
        self.coord_frame = coord_frame
        self.random_state = random_state

    # -- channel information
    def _info(self, X):
        if isinstance(X, Trials):
            return list(X.ch_names), X.positions, X.coord_frame, X.X.shape[1] if not isinstance(X.X, list) \
                else X.X[0].shape[0]
        n_ch = X[0].shape[0] if isinstance(X, list) else np.shape(X)[1]
        names = list(self.ch_names) if self.ch_names is not None else [f"ch{i:03d}" for i in range(n_ch)]
        return names, self.positions, self.coord_frame, n_ch

    def fit(self, X, y=None):
        """Work out the tokens from channel names / positions (``X`` is a `Trials` or an array)."""
        if self.missing not in ("own", "drop", "error"):
            raise ValueError(f"missing={self.missing!r}: expected 'own', 'drop' or 'error'")
        names, positions, frame, n_ch = self._info(X)
        if len(names) != n_ch:
            raise ValueError(f"ch_names has {len(names)} names but X has {n_ch} channels")
        if positions is not None and np.shape(positions) != (n_ch, 3):
            raise ValueError(f"positions has shape {np.shape(positions)}; expected ({n_ch}, 3)")
        labels = self._assign(names, positions, frame)  # one token label (or None) per channel
        order, members = [], {}
        unplaced = [names[i] for i, lab in enumerate(labels) if lab is None]
        if unplaced and self.missing == "error":
            raise ValueError(f"scale={self.scale!r}: channel(s) {unplaced[:10]} cannot be placed "
                             "(no usable name or coordinates); pass missing='own' or 'drop'")
        for i, lab in enumerate(labels):
            if lab is None:
                if self.missing == "drop":
                    continue
                lab = names[i]
            if lab not in members:
                order.append(lab)
                members[lab] = []
            members[lab].append(i)
        if not order:
            raise ValueError(f"scale={self.scale!r}: no channel could be placed in a token")
        self.token_names_ = order
        self.groups_ = [members[t] for t in order]
        self.ch_names_ = names
        if positions is not None:
            p = np.asarray(positions, dtype=np.float64)
            self.token_positions_ = np.array([np.nanmean(p[g], axis=0) if np.isfinite(p[g]).any()
                                              else np.full(3, np.nan) for g in self.groups_])
        else:
            self.token_positions_ = None
        self.n_channels_ = n_ch
        return self

    def _assign(self, names, positions, frame):
        scale = self.scale
        if scale == "channel":
            return list(names)
        if scale == "region":
            out = []
            for i, n in enumerate(names):
                reg = scalp_region(n)
                if reg is None and positions is not None and np.isfinite(positions[i]).all():
                    reg = scalp_region(_nearest_1005(np.asarray(positions[i], dtype=np.float64)))
                out.append(None if reg is None else f"{reg[0]}-{reg[1]}")
            return out
        if scale == "groups":
            mapping = harvard_oxford_lobes(names) if self.groups == "harvard-oxford-lobes" else self.groups
            if not isinstance(mapping, dict) or not mapping:
                raise ValueError("scale='groups' needs groups={token: [channel names]} or 'harvard-oxford-lobes'")
            where = {}
            for token, chans in mapping.items():
                for c in chans:
                    if str(c) in where:
                        raise ValueError(f"groups: channel {c!r} is in {where[str(c)]!r} and {token!r}")
                    where[str(c)] = token
            unknown = sorted(set(where) - set(map(str, names)))
            if unknown:
                raise ValueError(f"groups name channel(s) {unknown[:10]} that are not in ch_names")
            return [where.get(str(n)) for n in names]
        if scale in ("lobe", "parcel"):
            if positions is None:
                raise ValueError(f"scale={scale!r} needs channel coordinates (Trials.positions or positions=); "
                                 "use scale='channel' when there are none")
            if self.label_image is None and frame not in ("mni_tal", "mni") and not self.assume_mni:
                raise ValueError(f"scale={scale!r}: coordinates are in the {frame!r} frame, and the lobe rules "
                                 "need MNI; pass assume_mni=True to apply them anyway (approximate)")
            p = _positions_mm(positions, frame)
            ok = np.isfinite(p).all(1)
            labels = [None] * len(names)
            if scale == "parcel" and self.label_image is not None:
                looked = _label_image_lookup(self.label_image, p[ok], self.label_names)
                for i, lab in zip(np.flatnonzero(ok), looked):
                    labels[i] = lab
                return labels
            lobes = mni_lobe(p[ok]) if ok.any() else []
            for i, (lobe, hemi) in zip(np.flatnonzero(ok), lobes):
                labels[i] = f"{lobe}-{hemi}"
            if scale == "lobe":
                return labels
            return self._parcels(labels, p)
        raise ValueError(f"scale={scale!r}: expected 'channel', 'region', 'parcel', 'lobe' or 'groups'")

    def _parcels(self, lobe_labels, p):
        from sklearn.cluster import KMeans

        out = list(lobe_labels)
        for lobe in dict.fromkeys(lab for lab in lobe_labels if lab is not None):
            idx = [i for i, lab in enumerate(lobe_labels) if lab == lobe]
            k = int(np.ceil(len(idx) / max(1, int(self.channels_per_parcel))))
            if k <= 1:
                cluster = np.zeros(len(idx), dtype=int)
            else:
                cluster = KMeans(k, n_init=10, random_state=self.random_state).fit_predict(p[idx])
            # Number clusters in order of first appearance, so names do not depend on k-means' ids.
            renum = {c: j + 1 for j, c in enumerate(dict.fromkeys(cluster.tolist()))}
            for i, c in zip(idx, cluster):
                out[i] = f"{lobe}-{renum[c]}"
        return out

    def transform(self, X):
        """Token signals: mean of each token's channels."""
        check_is_fitted(self, "groups_")
        trials = X if isinstance(X, Trials) else None
        data = trials.X if trials is not None else X
        if isinstance(data, list):
            arrs = [np.asarray(x, dtype=np.float64) for x in data]
            if any(a.shape[0] != self.n_channels_ for a in arrs):
                raise ValueError(f"X has scans with a channel count other than {self.n_channels_}")
            out = [np.stack([a[g].mean(axis=0) for g in self.groups_]) for a in arrs]
        else:
            data = np.asarray(data, dtype=np.float64)
            if data.ndim != 3 or data.shape[1] != self.n_channels_:
                raise ValueError(f"X has shape {data.shape}; expected (n_trials, {self.n_channels_}, n_times)")
            out = np.stack([data[:, g].mean(axis=1) for g in self.groups_], axis=1)
        if trials is None:
            return out
        return Tokens(out, list(self.token_names_), self.token_positions_,
                      [[self.ch_names_[i] for i in g] for g in self.groups_], self.scale, trials.sfreq,
                      trials.y, trials.meta)

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)


def tokenize(trials, scale="channel", **options):
    """`RegionTokenizer(scale, **options)` fitted and applied to a `Trials`; returns `Tokens`.

    Examples
    --------
    >>> import numpy as np
    >>> from neurodecode import Trials
    >>> t = Trials(np.zeros((3, 2, 10)), sfreq=100.0, ch_names=["O1", "O2"], modality="eeg")
    >>> tokenize(t, "region").token_names
    ['occipital-left', 'occipital-right']
    """
    if not isinstance(trials, Trials):
        raise TypeError(f"tokenize: expected Trials, got {type(trials).__name__}; use RegionTokenizer for arrays")
    return RegionTokenizer(scale=scale, **options).fit_transform(trials)


def patch_tokens(tokens, patch_len, step=None):
    """Cut each token's series into windows: ``(n_trials, n_tokens, n_patches, patch_len)``.

    Parameters
    ----------
    tokens : Tokens or ndarray (n_trials, n_tokens, n_times)
    patch_len : int
        Samples per patch.
    step : int, optional
        Hop between patch starts (default ``patch_len``: no overlap;
        ``patch_len // 2``: 50 % overlap). Trailing samples that do not fill a
        patch are dropped.

    Returns
    -------
    ndarray (n_trials, n_tokens, n_patches, patch_len)
        A copy (not a strided view), safe to modify.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(10.0).reshape(1, 1, 10)
    >>> patch_tokens(x, 4, 3)[0, 0]
    array([[0., 1., 2., 3.],
           [3., 4., 5., 6.],
           [6., 7., 8., 9.]])
    """
    X = tokens.X if isinstance(tokens, Tokens) else tokens
    if isinstance(X, list):
        raise ValueError("patch_tokens: ragged token series (fMRI scans of different lengths); crop them first")
    X = np.asarray(X)
    if X.ndim != 3:
        raise ValueError(f"patch_tokens: X has shape {X.shape}; expected (n_trials, n_tokens, n_times)")
    patch_len = int(patch_len)
    step = patch_len if step is None else int(step)
    if patch_len < 1 or step < 1:
        raise ValueError(f"patch_len={patch_len}, step={step}: both must be >= 1")
    if patch_len > X.shape[-1]:
        raise ValueError(f"patch_len={patch_len} is longer than the series ({X.shape[-1]} samples)")
    windows = np.lib.stride_tricks.sliding_window_view(X, patch_len, axis=-1)
    return np.ascontiguousarray(windows[..., ::step, :])
