"""Model id + revision -> a local folder in Hugging Face layout.

A local folder is used as-is. Anything else is a Hub repo id, fetched (or found
in the cache) by `huggingface_hub`, which itself honours HF_TOKEN, HF_HOME,
HF_HUB_CACHE and HF_HUB_OFFLINE. This module must stay free of torch: the CLI's
`download` command uses it without loading a model.
"""

from __future__ import annotations

from pathlib import Path

# Only what serving needs: configs, tokenizer files and safetensors weights
# (never the .bin / .pt / .h5 duplicates many repos also carry).
ALLOW_PATTERNS: tuple[str, ...] = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    # Chat templates shipped beside the tokenizer config (found first, as TGI does).
    "chat_template.json",
    "chat_template.jinja",
    "*.safetensors",
    "model.safetensors.index.json",
)


def resolve_model_dir(
    model_id: str, revision: str | None, cache_dir: str | None, token: str | None = None
) -> Path:
    """Return the local folder holding `model_id`'s files.

    A path to an existing folder is returned unchanged (revision ignored).
    Otherwise `model_id` is a Hub repo id: the snapshot for `revision` is found
    in the cache (offline mode) or downloaded, with huggingface_hub's progress
    bars (HF_HUB_DISABLE_PROGRESS_BARS=1 hides them). `token` None lets
    huggingface_hub find one itself. Errors from huggingface_hub
    (unknown repo, missing cache entry while offline, gated repo) propagate.
    """
    local = Path(model_id).expanduser()
    if local.is_dir():
        return local
    from huggingface_hub import snapshot_download

    folder = snapshot_download(
        repo_id=model_id,
        revision=revision,
        cache_dir=cache_dir,
        allow_patterns=list(ALLOW_PATTERNS),
        token=token,
    )
    return Path(folder)
