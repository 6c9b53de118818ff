"""What a captioning run costs, estimated before it starts from the backend's registry prices (or the params' own)."""

from __future__ import annotations

from .registry import EXPECTED_TOKENS, backend_info, priced


def estimate_cost(n_images: int, prices: dict, expected_tokens: dict, discount: float = 0.0) -> dict:
    """Expected cost of captioning `n_images`: prices {"input_per_1m", "output_per_1m"} in USD, expected_tokens
    {"input", "output"} per image, and a discount on the whole (e.g. 0.5 for a batch API)."""
    for name in ("input_per_1m", "output_per_1m"):
        if name not in prices:
            raise ValueError(f"prices needs {name!r} (USD per million tokens); got keys {sorted(prices)}")
    for name in ("input", "output"):
        if name not in expected_tokens:
            raise ValueError(f"expected_tokens needs {name!r} (tokens per image); got keys {sorted(expected_tokens)}")
    factor = 1.0 - float(discount)
    input_tokens = n_images * expected_tokens["input"]
    output_tokens = n_images * expected_tokens["output"]
    cost = factor * (input_tokens * prices["input_per_1m"] + output_tokens * prices["output_per_1m"]) / 1e6
    text = (f"{n_images} image(s) x ~{expected_tokens['input']} input + ~{expected_tokens['output']} output tokens "
            f"= ~{input_tokens:,} + ~{output_tokens:,} tokens; estimated cost ${cost:,.2f}"
            + (f" ({int(round(discount * 100))} % discount)" if discount else "")
            + " (a strict retry of a bad answer costs one more call)")
    return {"n_images": n_images, "input_tokens": input_tokens, "output_tokens": output_tokens,
            "usd": round(cost, 4), "discount": discount, "text": text}


def estimate_for(backend: str, n_images: int, model: str | None = None, base_url=None, prices: dict | None = None,
                 expected_tokens: dict | None = None) -> dict | None:
    """The estimate a command shows before a paid run (None: the backend is free, or runs on a server of your own);
    prices: the params' own, else the registry's for `model`."""
    pricing = priced(backend, base_url)
    if pricing is None:
        return None
    chosen = prices or pricing.prices(model)
    if not chosen:
        return {"usd": None, "text": f"no list price for model {model!r} of backend {backend!r} in the registry "
                                     f"(priced: {', '.join(pricing.per_model)}; source {pricing.source}); "
                                     f"check the provider's page"}
    result = estimate_cost(n_images, chosen, expected_tokens or EXPECTED_TOKENS, pricing.discount)
    result["text"] += f" [{backend_info(backend).name} list prices as of {pricing.as_of}: {pricing.source}]"
    return result
