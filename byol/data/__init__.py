"""Images in: folders, named datasets, tar shards, the cache, the loaders and the batched augmentation."""
