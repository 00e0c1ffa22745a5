"""The run store and its typed records: the only code that knows how a sweep or a trial is kept."""
