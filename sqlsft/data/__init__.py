"""The data stage. What other stages use (its public API):

    from sqlsft.data.prepare import PrepareOptions, prepare
    prepared = prepare(PrepareOptions(dataset="builtin", model=None), console)   # cached, or made now

    from sqlsft.data.cache import Prepared, find_prepared, list_prepared
    prepared = Prepared.open(data_path)       # the preparation a run recorded (None when it is gone)
    prepared = find_prepared("builtin")       # the newest preparation of a data set, or None
    test = prepared.split("test")             # a datasets.Dataset; prepared.load() gives every split

Also: `sqlsft.data.prompts` (the one prompt renderer), `sqlsft.data.sources` (LOCAL_FORMATS,
source_identity, parse_column_map) and `sqlsft.data.builtin.generator` (the offline data set).
"""
