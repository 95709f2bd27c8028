"""tools/refgen/st.py: writes safetensors files (F32) without the safetensors package.

Layout: u64 little-endian header length, JSON header ({"name": {"dtype", "shape",
"data_offsets"}, "__metadata__": {str: str}}), then the tensors' bytes back to back."""
import json
import os
import struct

import numpy as np


def write(path, tensors, metadata=None):
    """tensors: dict name -> array-like (written as float32, C order)."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, value in tensors.items():
        a = np.ascontiguousarray(np.asarray(value, dtype=np.float32))
        b = a.astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    tmp = f"{path}.tmp.{os.getpid()}"  # then renamed: readers see the old file or the new one
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)
