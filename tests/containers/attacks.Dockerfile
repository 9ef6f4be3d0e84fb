# The executor image with pytest and the kernel attack suites (tests/kernels and two of tests/security), for
# tests/containers/test_executor_attacks.py: the suite runs in the executor container as compose
# starts it, against kernels of the launcher that container's agent builds.
FROM bi-test/executor
USER root
COPY constraints.txt /opt/bi-tests/
RUN pip install --no-cache-dir -c /opt/bi-tests/constraints.txt pytest pytest-asyncio pytest-timeout
COPY pyproject.toml /opt/bi-tests/
COPY tests/__init__.py /opt/bi-tests/tests/
COPY tests/kernels /opt/bi-tests/tests/kernels
# The bounds attack classes that run on kernels alone (not tests/security's conftest: it needs the server).
COPY tests/security/__init__.py tests/security/test_kernel_descriptors.py tests/security/test_inode_exhaustion.py \
     /opt/bi-tests/tests/security/
RUN python -m compileall -q /opt/bi-tests && chmod -R a+rX,go-w /opt/bi-tests
USER executor
WORKDIR /opt/bi-tests
ENV PYTHONPATH=/opt/bi:/opt/bi-tests TMPDIR=/tmp/workdir
ENTRYPOINT ["python", "-m", "pytest", "-p", "no:cacheprovider", "--rootdir=/opt/bi-tests"]
