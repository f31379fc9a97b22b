"""A graph library: build a seeded random graph, then shortest paths, PageRank, components."""

import os

import networkx as nx

SCALE = int(os.environ.get("PARITY_SCALE", "1"))


def main() -> None:
    graph = nx.gnm_random_graph(400 * SCALE, 2400 * SCALE, seed=7)
    lengths = dict(nx.single_source_shortest_path_length(graph, 0))
    rank = nx.betweenness_centrality(graph, k=40, seed=1)
    parts = list(nx.connected_components(graph))
    tree = nx.minimum_spanning_tree(graph)
    print(len(lengths), round(sum(rank.values()), 6), len(parts), tree.number_of_edges())


if __name__ == "__main__":
    main()
