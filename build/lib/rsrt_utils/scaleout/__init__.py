"""Beyond one machine: captioning, embedding and indexing on a Ray cluster (Ray Data), with the same corpus, cache
keys and results as the local path. `cluster` connects and checks; `captioning` describes images in an actor pool
(any backend, a fleet of OpenAI-compatible servers, or vLLM engines through `ray.data.llm`); `embedding` embeds
texts in an actor pool with the cache kept on the driver."""
