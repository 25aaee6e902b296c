# WIP (branch model-16 only): a LightGBM LambdaRank probe over EASE/ALS/kNN/popularity candidates, trained on
# the validation week, scored on the test week. Cached features from bench_model.features_for in /tmp/feat.
import sys, time, argparse
sys.path.insert(0, "/work/main/bench"); sys.path.insert(0, "/work/main/sagemaker")
from pathlib import Path
import numpy as np, pandas as pd, scipy.sparse as sp
import lightgbm as lgb
import sources, train
from evaluation import ranking_metrics
from hybrid import top_k
from bench_peers import Split, als_scorer, ease_scorer, knn_scorer, DAY_MS
F = Path("/tmp/feat/features/features")
tracks = train.read_table(F / "tracks").drop_duplicates("track_id").reset_index(drop=True)
inter = train.read_table(F / "interactions")
items = {t: i for i, t in enumerate(tracks["track_id"])}
n = len(items)
artist = pd.factorize(tracks["artist_id"])[0]
args = train.parse_args(["--version", "x"])
content = train.content_vectors(tracks, args.content_dims, args.audio_weight, args.seed, args.encoder)
cutoff = int(inter["last_ts"].max() - 7 * DAY_MS)
test = Split(inter, items, cutoff)
val = Split(inter[inter["first_ts"] < cutoff], items, cutoff - 7 * DAY_MS)
N = 100

def build(split, with_labels):
    t = time.perf_counter()
    scorers = {"ease": ease_scorer(split, 500.0), "als": als_scorer(split, 1.0, 0.1), "knn": knn_scorer(split, 200)}
    B = sources.ease(split.ratings, 500.0)
    tdr = split.train_df[(split.train_df["rating"] > 0)]
    hi = tdr["last_ts"].max()
    w = np.power(0.5, (hi - tdr["last_ts"].to_numpy()) / (7 * DAY_MS))
    xr = sp.csr_matrix((w, (tdr["user_id"].map(split.users), tdr["track_id"].map(items))), shape=split.ratings.shape)
    scorers["ease_recent"] = lambda rows: np.asarray(xr[rows] @ B)
    w1 = np.power(0.5, (hi - tdr["last_ts"].to_numpy()) / (1 * DAY_MS))
    x1 = sp.csr_matrix((w1, (tdr["user_id"].map(split.users), tdr["track_id"].map(items))), shape=split.ratings.shape)
    scorers["ease_1d"] = lambda rows: np.asarray(x1[rows] @ B)
    logpop = np.log1p(split.popularity)
    td = split.train_df
    recent_cut = td["last_ts"].max() - 7 * DAY_MS
    rp = td[td["last_ts"] >= recent_cut]["track_id"].map(items).value_counts()
    recent = np.zeros(n); recent[rp.index.to_numpy()] = rp.to_numpy()
    logrecent = np.log1p(recent)
    first_seen = td.groupby("track_id")["first_ts"].min()
    age = np.full(n, 60.0); age[first_seen.index.map(items).to_numpy()] = (td["last_ts"].max() - first_seen.to_numpy()) / DAY_MS
    rel = pd.to_datetime(tracks["release_date"], errors="coerce")
    rel_age = ((pd.Timestamp(td["last_ts"].max(), unit="ms") - rel).dt.days).fillna(9999).to_numpy()
    x = sources.binarize(split.ratings)
    hist_len = np.asarray(x.sum(axis=1)).ravel()
    # artist affinity: share of the user's history by artist
    A = sp.csr_matrix((np.ones(n), (np.arange(n), artist)), shape=(n, artist.max() + 1))
    ua = (x @ A).toarray() if False else None
    users = list(split.truth) if with_labels else list(split.truth)
    rows, groups, labels, keys = [], [], [], []
    for start in range(0, len(users), 256):
        batch = users[start:start + 256]
        idx = np.array([split.users[u] for u in batch])
        S = {k: f(idx) for k, f in scorers.items()}
        xa = (x[idx] @ A).toarray()
        prof = x[idx] @ content
        prof /= np.maximum(np.linalg.norm(prof, axis=1, keepdims=True), 1e-9)
        for r, u in enumerate(batch):
            banned = split.seen.get(u)
            cand = set()
            ranks = {}
            for k, s in S.items():
                top = top_k(s[r], N, banned)
                cand.update(top.tolist())
                rk = np.full(n, N + 1, dtype=np.float32); rk[top] = np.arange(1, top.size + 1); ranks[k] = rk
            toppop = top_k(split.popularity, N, banned); cand.update(toppop.tolist())
            cand.update(top_k(recent, N, banned).tolist())
            c = np.array(sorted(cand))
            norm = {k: S[k][r][c] / max(float(np.max(S[k][r][c])), 1e-9) for k in ("ease", "ease_recent", "ease_1d", "als", "knn")}
            feats = np.column_stack([norm["ease"], norm["ease_recent"], norm["ease_1d"], ranks["ease_1d"][c], norm["als"], norm["knn"],
                                     S["ease_recent"][r][c], ranks["ease_recent"][c], S["ease"][r][c], ranks["ease"][c], S["als"][r][c], ranks["als"][c],
                                     S["knn"][r][c], ranks["knn"][c], logpop[c], np.full(c.size, hist_len[idx[r]]),
                                     content[c] @ prof[r], xa[r][artist[c]] / max(hist_len[idx[r]], 1),
                                     logrecent[c], logrecent[c] - logpop[c], age[c], rel_age[c]])
            rows.append(feats); groups.append(c.size); keys.append((u, c))
            labels.append(np.array([1 if i in split.truth[u] else 0 for i in c]))
    print("built", len(users), "users", sum(groups), "rows in %.1f s" % (time.perf_counter() - t), flush=True)
    return np.vstack(rows), np.array(groups), np.concatenate(labels), keys

Xv, gv, yv, _ = build(val, True)
val2 = Split(inter[inter["first_ts"] < cutoff - 7 * DAY_MS], items, cutoff - 14 * DAY_MS)
X2, g2, y2, _ = build(val2, True)
Xv, gv, yv = np.vstack([Xv, X2]), np.concatenate([gv, g2]), np.concatenate([yv, y2])
ranker = lgb.LGBMRanker(objective="lambdarank", n_estimators=500, learning_rate=0.03, num_leaves=31, min_child_samples=100, subsample=0.8, subsample_freq=1, colsample_bytree=0.8, verbose=-1)
t = time.perf_counter(); ranker.fit(Xv, yv, group=gv); print("fit %.1f s" % (time.perf_counter() - t))
Xt, gt, yt, keys = build(test, True)
pred = ranker.predict(Xt)
recs = {}; off = 0
for (u, c), g in zip(keys, gt):
    p = pred[off:off + g]; off += g
    recs[u] = c[np.argsort(-p)][:50].tolist()
m = ranking_metrics(recs, test.truth, n, test.popularity, ks=(10, 50))
print("ranker NDCG@10 %.4f recall@10 %.4f" % (m["ndcg@10"], m["recall@10"]))
# candidate recall ceiling
hit = np.mean([len(set(c.tolist()) & test.truth[u]) / len(test.truth[u]) for u, c in keys])
print("candidate recall %.3f, mean candidates %.0f" % (hit, gt.mean()))
