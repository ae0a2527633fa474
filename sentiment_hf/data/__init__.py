"""Data: loading, readers, streaming, stratified splits, Arrow helpers."""
