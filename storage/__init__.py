"""The stores: candles (Parquet), windows (HDF5), runs, reports, champions; settings and errors."""
