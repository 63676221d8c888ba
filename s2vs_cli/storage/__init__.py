"""What is kept on disk: HDF5 feature files, their parts and checks, the search index, run bookkeeping."""
