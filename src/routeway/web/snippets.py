"""The model page's API section: ready-to-copy examples with this server's own URL, and the parameter
table, as the seed page shows them."""

from __future__ import annotations

import json

PARAMETERS: dict[str, tuple[str, str, str]] = {  # name → (type, default, description), in the seed's words
    "reasoning": ("map", "—", "Controls reasoning behavior for models that support thinking tokens, including whether"
                  " reasoning is enabled, the reasoning effort, maximum reasoning tokens, and whether reasoning is"
                  " excluded from the response."),
    "include_reasoning": ("boolean", "—", "Deprecated alias for reasoning.exclude."),
    "max_tokens": ("integer", "—", "This sets the upper limit for the number of tokens the model can generate in"
                   " response."),
    "temperature": ("float", "1", "This setting influences the variety in the model's responses."),
    "top_p": ("float", "1", "This setting limits the model's choices to a percentage of likely tokens: only the top"
              " tokens whose probabilities add up to P."),
    "frequency_penalty": ("float", "0", "This setting aims to control the repetition of tokens based on how often"
                          " they appear in the input."),
    "presence_penalty": ("float", "0", "Adjusts how often the model repeats specific tokens already used in the"
                         " input."),
    "top_k": ("integer", "0", "This limits the model's choice of tokens at each step, making it choose from a"
              " smaller set."),
    "repetition_penalty": ("float", "1", "Helps to reduce the repetition of tokens from the input."),
    "response_format": ("map", "—", "Forces the model to produce specific output format."),
    "structured_outputs": ("boolean", "—", "The model can return output that follows a JSON schema given in"
                           " response_format."),
    "tools": ("array", "—", "Tool calling parameter, following OpenAI's tool calling request shape."),
    "tool_choice": ("array", "—", "Controls which (if any) tool is called by the model."),
    "seed": ("integer", "—", "If specified, the inferencing will sample deterministically."),
    "stop": ("array", "—", "Stop generation immediately if the model encounters any token specified in the stop"
             " array."),
    "min_p": ("float", "0", "Represents the minimum probability for a token to be considered, relative to the most"
              " likely token."),
    "logprobs": ("boolean", "—", "Whether to return log probabilities of the output tokens or not."),
    "top_logprobs": ("integer", "—", "How many most likely tokens to return at each position, with their log"
                     " probability."),
    "logit_bias": ("map", "—", "Maps token ids to a bias from -100 to 100 added to their logits."),
}


def parameters(supported: tuple[str, ...]) -> list[tuple[str, str, str, str]]:
    return [(name, *PARAMETERS.get(name, ("—", "—", ""))) for name in supported]


def examples(base: str, model_id: str) -> list[tuple[str, str, str]]:
    """(tab id, title, code) for curl, the openai SDK, the openrouter SDK and streaming."""
    api = f"{base}/api/v1"
    messages = [{"role": "user", "content": "What is the meaning of life?"}]
    body = json.dumps({"model": model_id, "messages": messages}, indent=2)
    body_stream = json.dumps({"model": model_id, "messages": messages, "stream": True}, indent=2)
    curl = (f'curl {api}/chat/completions \\\n  -H "Content-Type: application/json" \\\n'
            f'  -H "Authorization: Bearer $ROUTEWAY_API_KEY" \\\n'
            f'  -H "HTTP-Referer: https://myapp.example" \\\n  -H "X-Title: My App" \\\n'
            f"  -d '{body}'")
    openai_sdk = f'''from openai import OpenAI
import os

client = OpenAI(
    base_url="{base}/v1",
    api_key=os.environ["ROUTEWAY_API_KEY"],
)

completion = client.chat.completions.create(
    extra_headers={{
        "HTTP-Referer": "https://myapp.example",  # optional: your site URL, for rankings
        "X-Title": "My App",  # optional: your app's name, for rankings
    }},
    model="{model_id}",
    messages=[{{"role": "user", "content": "What is the meaning of life?"}}],
)
print(completion.choices[0].message.content)'''
    openrouter_sdk = f'''from openrouter import OpenRouter
import os

client = OpenRouter(
    api_key=os.environ["ROUTEWAY_API_KEY"],
    server_url="{api}",
    http_referer="https://myapp.example",  # optional, for rankings
    x_open_router_title="My App",  # optional, for rankings
)

result = client.chat.send(
    model="{model_id}",
    messages=[{{"role": "user", "content": "What is the meaning of life?"}}],
)
print(result.choices[0].message.content)
print(client.generations.get_generation(id=result.id).data.total_cost)'''
    streaming = f'''curl -N {api}/chat/completions \\
  -H "Content-Type: application/json" \\
  -H "Authorization: Bearer $ROUTEWAY_API_KEY" \\
  -d '{body_stream}'

# Python (openai SDK): print the answer as it arrives
from openai import OpenAI
import os

client = OpenAI(base_url="{base}/v1", api_key=os.environ["ROUTEWAY_API_KEY"])
stream = client.chat.completions.create(
    model="{model_id}",
    messages=[{{"role": "user", "content": "What is the meaning of life?"}}],
    stream=True,
)
for chunk in stream:
    if chunk.choices:
        print(chunk.choices[0].delta.content or "", end="", flush=True)
    elif chunk.usage:  # the last chunk: tokens and cost (USD)
        print("\\n", chunk.usage)'''
    return [("curl", "curl", curl), ("python", "Python (openai)", openai_sdk),
            ("openrouter", "Python (openrouter)", openrouter_sdk), ("stream", "Streaming", streaming)]


def embedding_examples(base: str, model_id: str) -> list[tuple[str, str, str]]:
    """(tab id, title, code) for an embeddings model: curl and the openai SDK."""
    body = json.dumps({"model": model_id, "input": ["routeway", "embeddings"]}, indent=2)
    curl = (f'curl {base}/api/v1/embeddings \\\n  -H "Content-Type: application/json" \\\n'
            f'  -H "Authorization: Bearer $ROUTEWAY_API_KEY" \\\n  -d \'{body}\'')
    openai_sdk = f'''from openai import OpenAI
import os

client = OpenAI(base_url="{base}/v1", api_key=os.environ["ROUTEWAY_API_KEY"])
result = client.embeddings.create(model="{model_id}", input=["routeway", "embeddings"])
print(len(result.data[0].embedding), result.usage)'''
    return [("curl", "curl", curl), ("python", "Python (openai)", openai_sdk)]


def completion_examples(base: str, model_id: str) -> list[tuple[str, str, str]]:
    """(tab id, title, code) for a text completions model: curl and the openai SDK, whole and streamed."""
    body = json.dumps({"model": model_id, "prompt": "Once upon a time", "max_tokens": 50}, indent=2)
    curl = (f'curl {base}/api/v1/completions \\\n  -H "Content-Type: application/json" \\\n'
            f'  -H "Authorization: Bearer $ROUTEWAY_API_KEY" \\\n  -d \'{body}\'')
    openai_sdk = f'''from openai import OpenAI
import os

client = OpenAI(base_url="{base}/v1", api_key=os.environ["ROUTEWAY_API_KEY"])
completion = client.completions.create(model="{model_id}", prompt="Once upon a time", max_tokens=50)
print(completion.choices[0].text)
for chunk in client.completions.create(model="{model_id}", prompt="Once upon a time", max_tokens=50, stream=True):
    if chunk.choices:
        print(chunk.choices[0].text, end="", flush=True)'''
    return [("curl", "curl", curl), ("python", "Python (openai)", openai_sdk)]
