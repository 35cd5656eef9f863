"""Reference serving client: top-k items for users given their RAW feature values, from one
published version directory and nothing else (faiss, torch, pyarrow, numpy; no twotower code).

Every version carries a copy as ``serving/reference_client.py``; ``serving/bundle.json`` says
how each tower input is built (docs/artifacts.md, "Serving a version")::

    python serving/reference_client.py . '{"user_id": "u17", "region": "r3", "age_band": "a2",
        "activity": 4.5, "history": ["i12", "i7"]}' -k 10

A user is a JSON object: ``user_id``, one key per raw user feature (bundle ``feature`` names),
``history`` = raw ids of the items the user clicked, newest first. Missing keys and unknown
values take the out-of-vocabulary id 0 (numeric: the training mean). A JSON list queries a batch.
Prints ``[{"user_id", "items": [{"rank", "item_id", "score"}]}]``; scores are cosine similarities,
or, when the version carries the popularity prior (bundle ``user_tower.file`` = query_tower.pt),
``(cos + beta * tau * log(1 + c_i)) / sqrt(2)`` (docs/artifacts.md, "How the score is formed").
"""

import argparse
import hashlib
import json
import math
from pathlib import Path

import faiss
import numpy as np
import pyarrow.parquet as pq
import torch


class Client:
    def __init__(self, version_dir, verify=True):
        v = Path(version_dir)
        if verify:  # every file's sha256 against the manifest, before anything is loaded
            for rel, want in json.loads((v / "manifest.json").read_text())["files"].items():
                if hashlib.sha256((v / rel).read_bytes()).hexdigest() != want:
                    raise ValueError(f"{v / rel}: sha256 does not match manifest.json")
        self.b = json.loads((v / "serving" / "bundle.json").read_text())
        if not self.b["complete"]:
            raise ValueError(f"{v}: serving bundle incomplete, missing {self.b['missing']}")
        voc = pq.read_table(v / self.b["vocabulary"]["file"]).to_pydict()
        self.vocab = {}
        for name, value, i in zip(voc["vocab"], voc["value"], voc["id"], strict=True):
            self.vocab.setdefault(name, {})[value] = i
        self.inputs = {x["name"]: x for x in self.b["user_tower"]["inputs"]}
        self.tower = torch.jit.load(str(v / self.b["user_tower"]["file"]), map_location="cpu").eval()
        self.index = faiss.read_index(str(v / self.b["index"]["file"]))
        for name, val in self.b["index"]["search_params"].items():
            faiss.ParameterSpace().set_index_parameter(self.index, name, val)
        ids = pq.read_table(v / self.b["index"]["item_ids"]["file"])
        self.item_id = dict(zip(ids["item_idx"].to_pylist(), ids["item_id"].to_pylist(), strict=True))

    def tensors(self, users):
        """The user tower's four inputs for raw users (shapes in bundle.json)."""
        ids, cat_cols = self.vocab.get(self.inputs["user_idx"]["vocab"], {}), self.inputs["user_cat"]["columns"]
        num_cols, h = self.inputs["user_num"]["columns"], self.inputs["hist"]
        items = self.vocab.get(h["vocab"], {})

        def z(x, c):
            missing = x is None or (isinstance(x, float) and math.isnan(x))
            return 0.0 if missing else (float(x) - c["mean"]) / c["std"]

        uidx = [ids.get(u.get("user_id"), 0) for u in users]
        cat = [[self.vocab.get(c["vocab"], {}).get(None if u.get(c["feature"]) is None else str(u[c["feature"]]), 0) for c in cat_cols] for u in users]
        num = [[z(u.get(c["feature"]), c) for c in num_cols] for u in users]
        hist = np.zeros((len(users), h["width"]), dtype=np.int64)
        for row, u in enumerate(users):
            known = [items[i] for i in u.get("history") or [] if i in items][: h["length"]]
            hist[row, : len(known)] = known
        return (torch.tensor(uidx, dtype=torch.int64), torch.tensor(cat, dtype=torch.int64).reshape(len(users), len(cat_cols)),
                torch.tensor(np.asarray(num, np.float64).astype(np.float32)).reshape(len(users), len(num_cols)),
                torch.from_numpy(hist))

    def recommend(self, users, k=50):
        with torch.inference_mode():
            emb = self.tower(*self.tensors(users)).float().numpy().copy()
        faiss.normalize_L2(emb)
        scores, labels = self.index.search(emb, min(k, self.index.ntotal))
        return [{"user_id": u.get("user_id"),
                 "items": [{"rank": r + 1, "item_id": self.item_id[int(lab)], "score": float(s)}
                           for r, (lab, s) in enumerate(zip(labels[i], scores[i], strict=True)) if lab >= 0]}
                for i, u in enumerate(users)]


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="top-k items for users given raw features, from a version directory")
    p.add_argument("version_dir")
    p.add_argument("users", help="JSON object (one user) or list of objects")
    p.add_argument("-k", type=int, default=50)
    a = p.parse_args()
    users = json.loads(a.users)
    print(json.dumps(Client(a.version_dir).recommend(users if isinstance(users, list) else [users], a.k), indent=1))
