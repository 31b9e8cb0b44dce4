# The control plane image: `docker build -t xds-ambient:0.1.0 .` from the repository root.
# Two stages: the wheel is built with the full toolchain, the runtime gets only the wheel
# and its dependencies.
FROM python:3.11.14-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY xds ./xds
COPY protos ./protos
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.14-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && groupadd --system --gid 1337 istio \
    && useradd --system --uid 1337 --gid istio --no-create-home --shell /usr/sbin/nologin istio
USER 1337:1337
EXPOSE 15010 15012 15014
ENTRYPOINT ["xds"]
CMD ["serve", "--kubernetes"]
