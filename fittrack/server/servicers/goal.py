from __future__ import annotations

import asyncio

from fittrack.core.services.goals import Goals
from fittrack.generated.v1 import goal_pb2, goal_pb2_grpc
from fittrack.server import mapping
from fittrack.server.auth import current_principal


class GoalServicer(goal_pb2_grpc.GoalServiceServicer):
    def __init__(self, goals: Goals) -> None:
        self._goals = goals

    async def CreateGoal(self, request, context):
        notify = request.notify if request.HasField("notify") else True
        goal = await asyncio.to_thread(
            self._goals.create, current_principal(), request.metric, request.period, request.target, notify
        )
        return mapping.goal(goal)

    async def ListGoals(self, request, context):
        goals = await asyncio.to_thread(self._goals.list, current_principal(), request.include_inactive)
        return goal_pb2.ListGoalsResponse(goals=[mapping.goal(g) for g in goals])

    async def UpdateGoal(self, request, context):
        target = request.target if request.HasField("target") else None
        active = request.active if request.HasField("active") else None
        notify = request.notify if request.HasField("notify") else None
        goal = await asyncio.to_thread(self._goals.update, current_principal(), request.goal_id, target, active, notify)
        return mapping.goal(goal)

    async def DeleteGoal(self, request, context):
        await asyncio.to_thread(self._goals.delete, current_principal(), request.goal_id)
        return goal_pb2.DeleteGoalResponse()

    async def GetGoalProgress(self, request, context):
        day = mapping.optional_date(request, "date", "date")
        progress = await asyncio.to_thread(self._goals.progress, current_principal(), request.goal_id, day)
        return mapping.goal_progress(progress)
