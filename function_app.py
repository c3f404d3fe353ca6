"""The API's table of contents: one HTTP function per endpoint, each handing over to assistants_core.

Routes sit under the `openai` prefix set in host.json. Functions' own keys are off (ANONYMOUS):
the API key is checked in code, the way Azure OpenAI clients send it.
"""

import azure.functions as func

from assistants_core import endpoints
from assistants_core.http import Api
from assistants_core.routing import ALL_METHODS, FunctionApp

app = FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
api = Api.from_environment()  # refuses to start without API keys and storage settings


@app.route(route="assistants", methods=["POST"])
def create_assistant(req: func.HttpRequest) -> func.HttpResponse:
    return api.handle(req, endpoints.create_assistant)


@app.route(route="assistants", methods=["GET"])
def list_assistants(req: func.HttpRequest) -> func.HttpResponse:
    return api.handle(req, endpoints.list_assistants)


@app.route(route="assistants/{assistant_id}", methods=["GET"])
def retrieve_assistant(req: func.HttpRequest) -> func.HttpResponse:
    return api.handle(req, endpoints.retrieve_assistant)


@app.route(route="assistants/{assistant_id}", methods=["POST"])
def modify_assistant(req: func.HttpRequest) -> func.HttpResponse:
    return api.handle(req, endpoints.modify_assistant)


@app.route(route="assistants/{assistant_id}", methods=["DELETE"])
def delete_assistant(req: func.HttpRequest) -> func.HttpResponse:
    return api.handle(req, endpoints.delete_assistant)


@app.route(route="threads", methods=["POST"])
def create_thread(req: func.HttpRequest) -> func.HttpResponse:
    return api.handle(req, endpoints.create_thread)


@app.route(route="threads/{thread_id}", methods=["GET"])
def retrieve_thread(req: func.HttpRequest) -> func.HttpResponse:
    return api.handle(req, endpoints.retrieve_thread)


@app.route(route="threads/{thread_id}", methods=["POST"])
def modify_thread(req: func.HttpRequest) -> func.HttpResponse:
    return api.handle(req, endpoints.modify_thread)


@app.route(route="threads/{thread_id}", methods=["DELETE"])
def delete_thread(req: func.HttpRequest) -> func.HttpResponse:
    return api.handle(req, endpoints.delete_thread)


@app.route(route="threads/{thread_id}/messages", methods=["POST"])
def create_message(req: func.HttpRequest) -> func.HttpResponse:
    return api.handle(req, endpoints.create_message)


@app.route(route="threads/{thread_id}/messages", methods=["GET"])
def list_messages(req: func.HttpRequest) -> func.HttpResponse:
    return api.handle(req, endpoints.list_messages)


@app.route(route="threads/{thread_id}/messages/{message_id}", methods=["GET"])
def retrieve_message(req: func.HttpRequest) -> func.HttpResponse:
    return api.handle(req, endpoints.retrieve_message)


@app.route(route="threads/{thread_id}/messages/{message_id}", methods=["POST"])
def modify_message(req: func.HttpRequest) -> func.HttpResponse:
    return api.handle(req, endpoints.modify_message)


@app.route(route="threads/{thread_id}/messages/{message_id}", methods=["DELETE"])
def delete_message(req: func.HttpRequest) -> func.HttpResponse:
    return api.handle(req, endpoints.delete_message)


@app.route(route="{*path}", methods=ALL_METHODS)
def unmatched_route(req: func.HttpRequest) -> func.HttpResponse:
    return api.handle_unmatched(req, app)
