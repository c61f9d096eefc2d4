"""The LLM agent driver: an agent command (`python -m clawroomd.llm --model MODEL`) that asks a model
behind any OpenAI-compatible chat-completions endpoint for each turn's action. It speaks only the agent
command protocol (a JSON document in, a JSON action out) and imports nothing of the daemon."""
