"""A function app with a queue trigger and a timer trigger, for running the dev host as a
subprocess (`python -m devhost --app tests.apps.triggers:app`). Its settings:

- TRIGGERS_STORAGE: the storage connection string the queue trigger uses;
- TRIGGERS_QUEUE: the queue it listens on;
- TRIGGERS_SCHEDULE: the timer's NCRONTAB schedule;
- TRIGGERS_REPORT: a file each run appends one JSON line to, saying what it was given.
"""

from __future__ import annotations

import json
import os
from typing import Any

import azure.functions as func

app = func.FunctionApp()


def report(**fields: Any) -> None:
    with open(os.environ["TRIGGERS_REPORT"], "a", encoding="utf-8") as file:
        file.write(json.dumps(fields) + "\n")


@app.queue_trigger(arg_name="msg", queue_name="%TRIGGERS_QUEUE%", connection="TRIGGERS_STORAGE")
async def on_message(msg: func.QueueMessage) -> None:
    report(
        function="on_message",
        id=msg.id,
        body=msg.get_body().decode(),
        dequeue_count=msg.dequeue_count,
    )


@app.timer_trigger(arg_name="timer", schedule="%TRIGGERS_SCHEDULE%")
def on_timer(timer: func.TimerRequest) -> None:
    report(function="on_timer", past_due=timer.past_due)
