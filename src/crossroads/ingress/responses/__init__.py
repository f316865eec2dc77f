"""OpenAI's Responses API (`/v1/responses`) over every model the gateway serves: `handler` (the
endpoints), `request` (typed request, to the neutral one), `output` (the answer and its stream
events), `store` (stored responses)."""
