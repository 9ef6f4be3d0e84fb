"""Dataset routes: streamed CSV uploads, listing, details, versions, paged preview, delete."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from ..errors import BIError, InvalidRequestError
from ..limits import QUERY_INTEGER_MAX
from ..models import Dataset, DatasetVersion
from ..services.datasets import Usage
from ..paging import NEWEST
from .authors import with_author_names
from .base import APIHandler, idempotent, megabytes
from .listing import list_query, page_json
from .upload_sink import UploadSink

MULTIPART_OVERHEAD = 64 * 1024


RENAME_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 1000}},
    "required": ["name"],
    "additionalProperties": False,
}


def dataset_json(dataset: Dataset, version: DatasetVersion, listed: bool = False) -> dict[str, Any]:
    """The dataset with its current version: whole, or (``listed``) with a column count instead of the columns."""
    return {"id": dataset.id, "name": dataset.name, "aliases": list(dataset.aliases), "owner_id": dataset.owner_id,
            "updated_at": dataset.updated_at, **(version.summary() if listed else version.public()),
            "created_at": dataset.created_at}


class UploadHandler(APIHandler):
    """A handler whose POST body is a CSV, written to a temporary file as it streams in."""

    sink: UploadSink | None = None
    usage: Usage | None = None  # what the upload's owner stores, as read to refuse it unread

    async def prepare(self) -> None:
        await super().prepare()
        if self.request.method != "POST" or self._finished:
            return
        declared = self.request.headers.get("Content-Length", "")
        if declared.isdigit():  # refused unread when it cannot fit (the service checks again what arrived)
            self.usage = await self.datasets.check_quota(await self.upload_owner(), int(declared))
        self.sink = UploadSink(self.datasets.new_upload_path(),
                               self.request.headers.get("Content-Type", ""), self.datasets.max_upload_bytes)

    async def upload_owner(self) -> str:
        """The id of the user whose storage quota the upload counts against."""
        assert self.user is not None
        return self.user.id

    def body_limit(self) -> tuple[int, str]:
        if self.request.method != "POST" or self.user is None:
            return super().body_limit()
        limit = self.datasets.max_upload_bytes
        return limit + MULTIPART_OVERHEAD, f"The file is larger than the limit of {megabytes(limit)}."

    def data_received(self, chunk: bytes) -> None:
        if self.sink is None or self._finished:
            return
        try:
            self.sink.feed(chunk)
        except BIError as exc:
            self.sink.discard()
            self.send_error(exc_info=(type(exc), exc, exc.__traceback__))

    def finish_upload(self) -> UploadSink:
        """The complete upload; its options come from the query or the form."""
        assert self.sink is not None
        self.sink.close()
        return self.sink

    def upload_option(self, name: str) -> str | None:
        """An option as sent, unstripped (a tab or a space is a delimiter); empty is not given."""
        assert self.sink is not None
        sent = self.request.query_arguments.get(name)
        return (self.decode_argument(sent[-1], name) if sent else self.sink.fields.get(name)) or None

    def finish(self, chunk: Any = None) -> Any:
        if self.sink is not None:
            self.sink.discard()  # before the answer: the client never sees a file left behind
        return super().finish(chunk)

    def on_connection_close(self) -> None:
        if self.sink is not None:
            self.sink.discard()
        super().on_connection_close()

    def write_upload_result(self, dataset: Dataset, version: DatasetVersion, result: Any, status: int) -> None:
        body = dataset_json(dataset, version)
        body["detection"] = {"encoding_detected": result.encoding_detected,
                             "encoding_confidence": result.encoding_confidence,
                             "delimiter_detected": result.delimiter_detected}
        self.set_header("Location", f"/api/datasets/{dataset.id}")
        self.write_json(body, status)


class DatasetsHandler(UploadHandler):
    async def get(self) -> None:
        assert self.user is not None
        query = list_query(self, ("owner", "q"))
        page = await self.datasets.page_visible(self.user, query)
        self.write_json(page_json("datasets", page, [dataset_json(d, v, listed=True) for d, v in page.items], query))

    @idempotent
    async def post(self) -> None:
        if self._finished:
            return
        assert self.user is not None
        sink = self.finish_upload()
        name = self.upload_option("name") or (PurePath(sink.filename).stem if sink.filename else "")
        if not name:
            raise InvalidRequestError("Give the dataset a name: ?name=sales.", {"field": "name"})
        dataset, version, result = await self.datasets.create(
            self.user, name, sink.path, self.upload_option("encoding"), self.upload_option("delimiter"), self.usage)
        self.write_upload_result(dataset, version, result, 201)


class DatasetVersionsHandler(UploadHandler):
    async def upload_owner(self) -> str:
        assert self.user is not None
        return (await self.datasets.get_visible(self.user, self.path_kwargs["dataset_id"])).owner_id

    async def get(self, dataset_id: str) -> None:
        assert self.user is not None
        query = list_query(self, sorts=NEWEST)
        page = await self.datasets.versions(self.user, dataset_id, query)
        versions = await with_author_names(self.datasets.store, [v.summary() for v in page.items])
        self.write_json(page_json("versions", page, versions, query))

    @idempotent
    async def post(self, dataset_id: str) -> None:
        if self._finished:
            return
        assert self.user is not None
        sink = self.finish_upload()
        dataset, version, result = await self.datasets.add_version(
            self.user, dataset_id, sink.path, self.upload_option("encoding"), self.upload_option("delimiter"),
            self.usage)
        self.write_upload_result(dataset, version, result, 201)


class DatasetHandler(APIHandler):
    async def get(self, dataset_id: str) -> None:
        assert self.user is not None
        dataset = await self.datasets.get_visible(self.user, dataset_id)
        version = await self.datasets.get_version(self.user, dataset_id)
        self.write_json(dataset_json(dataset, version))

    async def patch(self, dataset_id: str) -> None:
        """``{"name"}``: rename; cards loading it by the names it had keep working (its ``aliases``)."""
        assert self.user is not None
        body = self.json_body(RENAME_SCHEMA)
        dataset = await self.datasets.rename(self.user, dataset_id, body["name"])
        self.write_json(dataset_json(dataset, await self.datasets.get_version(self.user, dataset_id)))

    async def delete(self, dataset_id: str) -> None:
        assert self.user is not None
        await self.datasets.delete(self.user, dataset_id)
        self.set_status(204)
        self.finish()


class DatasetPreviewHandler(APIHandler):
    async def get(self, dataset_id: str) -> None:
        assert self.user is not None
        page = await self.datasets.preview(
            self.user, dataset_id, self.int_argument("version", None, 1, QUERY_INTEGER_MAX),
            self.int_argument("offset", 0, 0, QUERY_INTEGER_MAX),
            self.int_argument("limit", 100, 1, self.datasets.max_preview_rows))
        await self.write_page_json(page)
