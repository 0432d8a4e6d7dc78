"""spotify-catalog: collect Spotify catalog data into a database and a Parquet lake."""

from spotify_catalog.errors import SpotifyCatalogError

__all__ = ["SpotifyCatalogError", "__version__"]
__version__ = "0.1.0"
