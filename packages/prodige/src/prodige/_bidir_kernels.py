"""The numba kernels of :mod:`prodige._bidir` (imported on first use: numba costs ~1 s to import,
and the first call compiles, then the machine code is cached next to this file)."""

import numpy as np
from numba import njit


@njit(cache=True)
def _push(hk, hv, size, key, val):
    if size == len(hk):
        nk, nv = np.empty(2 * size, hk.dtype), np.empty(2 * size, hv.dtype)
        nk[:size], nv[:size] = hk, hv
        hk, hv = nk, nv
    i = size
    hk[i], hv[i] = key, val
    while i > 0:
        p = (i - 1) >> 1
        if hk[p] <= hk[i]:
            break
        hk[p], hk[i] = hk[i], hk[p]
        hv[p], hv[i] = hv[i], hv[p]
        i = p
    return hk, hv, size + 1


@njit(cache=True)
def _pop(hk, hv, size):
    key, val = hk[0], hv[0]
    size -= 1
    hk[0], hv[0] = hk[size], hv[size]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        if c + 1 < size and hk[c + 1] < hk[c]:
            c += 1
        if hk[i] <= hk[c]:
            break
        hk[c], hk[i] = hk[i], hk[c]
        hv[c], hv[i] = hv[i], hv[c]
        i = c
    return key, val, size


@njit(cache=True)
def _one(ip, ix, dx, rip, rix, rdx, s, t, n, pf, pb):
    df = np.full(n, np.inf)
    db = np.full(n, np.inf)
    df[s], db[t] = 0.0, 0.0
    fk, fv = np.empty(64, np.float64), np.empty(64, np.int64)
    bk, bv = np.empty(64, np.float64), np.empty(64, np.int64)
    fk, fv, fn = _push(fk, fv, 0, 0.0, s)
    bk, bv, bn = _push(bk, bv, 0, 0.0, t)
    mu, mu_u, mu_v = np.inf, -1, -1
    while fn > 0 and bn > 0:
        if fk[0] + bk[0] >= mu:
            break
        if fk[0] <= bk[0]:
            d, x, fn = _pop(fk, fv, fn)
            if d > df[x]:
                continue
            for a in range(ip[x], ip[x + 1]):
                y = ix[a]
                nd = d + dx[a]
                if nd < df[y]:
                    df[y] = nd
                    pf[y] = x
                    if nd + bk[0] < mu:  # else no path through y can beat mu
                        fk, fv, fn = _push(fk, fv, fn, nd, y)
                if db[y] < np.inf and d + dx[a] + db[y] < mu:
                    mu, mu_u, mu_v = d + dx[a] + db[y], x, y
        else:
            d, x, bn = _pop(bk, bv, bn)
            if d > db[x]:
                continue
            for a in range(rip[x], rip[x + 1]):
                y = rix[a]  # the forward arc is y -> x
                nd = d + rdx[a]
                if nd < db[y]:
                    db[y] = nd
                    pb[y] = x
                    if nd + fk[0] < mu:
                        bk, bv, bn = _push(bk, bv, bn, nd, y)
                if df[y] < np.inf and df[y] + rdx[a] + d < mu:
                    mu, mu_u, mu_v = df[y] + rdx[a] + d, y, x
    return mu, mu_u, mu_v


@njit(cache=True)
def _batch(ip, ix, dx, rip, rix, rdx, src, dst, n):
    P = len(src)
    mu = np.full(P, np.inf)
    mu_u = np.full(P, -1, np.int64)
    mu_v = np.full(P, -1, np.int64)
    pf = np.full((P, n), -9999, np.int32)
    pb = np.full((P, n), -9999, np.int32)
    for i in range(P):
        mu[i], mu_u[i], mu_v[i] = _one(ip, ix, dx, rip, rix, rdx, src[i], dst[i], n, pf[i], pb[i])
    return mu, mu_u, mu_v, pf, pb
