"""Datasets mlgraph can make on its own, with no network.

``fashion_mnist``: the source photographs (idx files, the Debian package, the bundled subset);
``outfits``: label sets with co-occurrence structure; ``scenes``: composing items over clutter;
``fashion_scenes``: the whole dataset written as images + COCO instances JSON.
"""

# name -> what it is; the make-dataset command lists these when a name is unknown.
DATASETS: dict[str, str] = {
    "fashion-scenes": "Fashion-MNIST items composed into cluttered multi-label colour scenes",
}
