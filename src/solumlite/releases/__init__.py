"""The releases of solumlite's domain in the tree: :mod:`.n` (release N)
and :mod:`.n1` (release N+1). Both can be imported into one process."""
