"""Remote-sensing archives (the `geo` extra: rasterio, pystac): GeoTIFF / COG / JPEG 2000 scenes cut into chips with
footprints, STAC catalogues as inputs. `raster` reads windows and makes the 8-bit chip every captioner sees;
`archive` chips a folder or catalogue incrementally; `stac` reads catalogues."""
