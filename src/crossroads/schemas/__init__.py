"""The neutral request, response, stream and usage types. Imports nothing else of ours."""

from crossroads.schemas.chat import (
    AssistantMessage,
    ChatRequest,
    ContentPart,
    DeveloperMessage,
    FunctionCall,
    ImageUrlPart,
    Message,
    StreamOptions,
    SystemMessage,
    TextPart,
    Tool,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from crossroads.schemas.usage import Usage

__all__ = [
    "AssistantMessage",
    "ChatRequest",
    "ContentPart",
    "DeveloperMessage",
    "FunctionCall",
    "ImageUrlPart",
    "Message",
    "StreamOptions",
    "SystemMessage",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolMessage",
    "Usage",
    "UserMessage",
]
