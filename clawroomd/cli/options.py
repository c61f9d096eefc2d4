"""`Config`: one command line, parsed. Every option of every command is a typed field, so a command that
reads an option the parser does not define is a mypy error, not an AttributeError at run time."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class Config:
    command: str
    socket: str | None = None
    json: bool = False
    # create
    topic: str = ""
    goal: str = ""
    fields: list[str] = field(default_factory=list)
    max_turns: int = 20
    first: str = "host"
    turn_timeout: str | None = None
    deadline: str | None = None
    invite_ttl: str | None = None
    advertise: list[str] | None = None
    agents: int | None = None
    # create, join
    label: str = ""
    agent: str | None = None
    agent_llm: str | None = None  # --agent-llm MODEL (cli/llm_agent.py), with:
    base_url: str | None = None
    api_key_env: str | None = None
    deliver: str | None = None  # the delivery hook (argv in one string, like --agent)
    # join
    url: str | None = None
    join_url: str | None = None
    role: str = "guest"
    timeout: float | None = None  # join: 30 s with a URL, 600 s by room id
    peer: str | None = None  # join --room, approve, deny: the peer (id or LAN name)
    lan_join: bool = False  # create: accept LAN join requests by room id
    # send, status, watch, close, cancel, result, transcript (join: accepted and ignored)
    room: str = ""
    text: str = ""
    propose: list[str] = field(default_factory=list)
    accept: list[str] = field(default_factory=list)
    reject: list[str] = field(default_factory=list)
    sid: str | None = None
    expect_seq: int | None = None
    watch: bool = False
    from_seq: int = 0
    reason: str = ""
    # create, join
    context: str | None = None  # an owner-context profile
    # context write, context show (room: above)
    context_action: str = ""
    profile: str | None = None
    owner_name: str | None = None
    owner_role: str | None = None
    task_context: str | None = None
    goals: list[str] | None = None
    constraints: list[str] | None = None
    priorities: list[str] | None = None
    confirmed_facts: list[str] | None = None
    private_facts: list[str] | None = None
    limits: list[str] | None = None
    language: str | None = None
    from_file: str | None = None
    replace: bool = False
    # create, join: the owner's notify hook; answer
    notify: str | None = None
    approve: bool = False
    reject_question: bool = False
    answer_text: str = ""
    # result
    wait: bool = False
    wait_timeout: float | None = None
    # verify
    final_result: str | None = None
    transcript_file: str | None = None
    # demo
    keep: bool = False
