"""Agreement documents: the store of their bytes, type checks, text extraction and comparison."""
