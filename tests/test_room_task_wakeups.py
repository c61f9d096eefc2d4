"""Per-room tasks that wait for something rare (the room's end, an owner's question) do not run at every
event of the room: each event would otherwise cost a task switch per such task in both daemons."""

from __future__ import annotations

from collections import Counter

import trio
import trio.lowlevel
from test_storage_failure import Side, open_room, sides, until  # noqa: F401 - `sides` is a fixture

WATCHED = ("Results.run", "Questions.watch")


class TaskSteps(trio.abc.Instrument):
    def __init__(self) -> None:
        self.steps: Counter[tuple[str, int]] = Counter()

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        for name in WATCHED:
            if task.name.endswith(name):
                self.steps[name, id(task)] += 1


async def test_result_and_question_tasks_sleep_through_the_room_s_events(sides: tuple[Side, Side]) -> None:  # noqa: F811
    host, guest = sides
    room_id = await open_room(host, guest)
    steps = TaskSteps()
    trio.lowlevel.add_instrument(steps)
    try:
        for i in range(8):  # 16 messages: open_room allows 20 turns
            await host.call("room.send", room_id=room_id, text=f"host {i}")
            await until("the guest's turn", lambda: guest.sup.rooms[room_id].our_turn)
            await guest.call("room.send", room_id=room_id, text=f"guest {i}")
            await until("the host's turn", lambda: host.sup.rooms[room_id].our_turn)
    finally:
        trio.lowlevel.remove_instrument(steps)
    # 16 events in each daemon; each of these tasks (one per room per daemon) stays asleep (one step
    # allowed: the guest's tasks may start only now, once its `joined` is through)
    assert host.sup.rooms[room_id].state.seq >= 16
    assert all(n <= 1 for n in steps.steps.values()), steps.steps

    # ...and still runs when it should: the close wakes the result writer on both sides
    await host.call("room.close", room_id=room_id)
    await until("the guest may countersign", lambda: guest.sup.rooms[room_id].state.phase == "delivering")
    await guest.call("room.close", room_id=room_id)
    for side in (host, guest):
        await until("the result file", lambda side=side: side.sup.results.path(room_id).exists())  # type: ignore[misc]
