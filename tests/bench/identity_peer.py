"""SciPy's connected components over quanyu's `identity_edges` Delta table:
the peer `quanyu bench identity` compares its components step with.

    python3 tests/bench/identity_peer.py <lake>/graph/identity_edges

Reads the table's live Parquet files (deltalake), dictionary-encodes the
identifiers (pyarrow), runs scipy.sparse.csgraph.connected_components on the
edges, and prints JSON: the seconds of the components step alone (as quanyu
times its own: union-find and grouping over integer-coded nodes) and of the
whole run. Needs: pip install deltalake pyarrow numpy scipy
"""

import json
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

t0 = time.perf_counter()
table = DeltaTable(sys.argv[1]).to_pyarrow_table(columns=["a_type", "a_value", "b_type", "b_value"])
a = pc.binary_join_element_wise(table["a_type"], table["a_value"], "\x1f")
b = pc.binary_join_element_wise(table["b_type"], table["b_value"], "\x1f")
both = pa.chunked_array(a.chunks + b.chunks).combine_chunks().dictionary_encode()
codes = both.indices.to_numpy(zero_copy_only=False)
n = len(both.dictionary)
m = len(a)
read = time.perf_counter() - t0

t1 = time.perf_counter()
graph = coo_matrix((np.ones(m, dtype=np.int8), (codes[:m], codes[m:])), shape=(n, n)).tocsr()
count, labels = connected_components(graph, directed=False)
comp = time.perf_counter() - t1

print(json.dumps({
    "nodes": n,
    "edges": m,
    "components": int(count),
    "read_secs": read,
    "components_secs": comp,
    "total_secs": time.perf_counter() - t0,
}))
