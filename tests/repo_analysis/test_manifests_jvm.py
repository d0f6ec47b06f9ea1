"""Maven poms (parents, properties, managed versions, modules) and Gradle scripts."""

from __future__ import annotations

from tests.repo_analysis.helpers import deps, frameworks, manifest, tool_paths

ROOT_POM = """
    <?xml version="1.0" encoding="UTF-8"?>
    <project xmlns="http://maven.apache.org/POM/4.0.0"
             xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
             xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 https://maven.apache.org/xsd/maven-4.0.0.xsd">
      <modelVersion>4.0.0</modelVersion>
      <parent>
        <groupId>org.springframework.boot</groupId>
        <artifactId>spring-boot-starter-parent</artifactId>
        <version>3.2.0</version>
        <relativePath/> <!-- lookup parent from repository -->
      </parent>
      <groupId>com.example</groupId>
      <artifactId>shop</artifactId>
      <version>1.4.0</version>
      <packaging>pom</packaging>
      <modules>
        <module>api</module>
      </modules>
      <properties>
        <java.version>17</java.version>
        <guava.version>32.1.3-jre</guava.version>
        <jjwt.version>0.12.3</jjwt.version>
      </properties>
      <dependencyManagement>
        <dependencies>
          <dependency>
            <groupId>com.google.guava</groupId>
            <artifactId>guava</artifactId>
            <version>${guava.version}</version>
          </dependency>
          <dependency>
            <groupId>io.jsonwebtoken</groupId>
            <artifactId>jjwt-api</artifactId>
            <version>${jjwt.version}</version>
          </dependency>
        </dependencies>
      </dependencyManagement>
    </project>
"""
API_POM = """
    <project>
      <modelVersion>4.0.0</modelVersion>
      <parent>
        <groupId>com.example</groupId>
        <artifactId>shop</artifactId>
        <version>1.4.0</version>
      </parent>
      <artifactId>api</artifactId>
      <properties>
        <guava.version>33.0.0-jre</guava.version>
      </properties>
      <dependencies>
        <dependency>
          <groupId>org.springframework.boot</groupId>
          <artifactId>spring-boot-starter-web</artifactId>
        </dependency>
        <dependency>
          <groupId>com.google.guava</groupId>
          <artifactId>guava</artifactId>
        </dependency>
        <dependency>
          <groupId>io.jsonwebtoken</groupId>
          <artifactId>jjwt-api</artifactId>
        </dependency>
        <dependency>
          <groupId>com.example</groupId>
          <artifactId>common</artifactId>
          <version>${project.version}</version>
        </dependency>
        <dependency>
          <groupId>org.mapstruct</groupId>
          <artifactId>mapstruct</artifactId>
          <version>${mapstruct.version}</version>
        </dependency>
        <dependency>
          <groupId>org.springframework.boot</groupId>
          <artifactId>spring-boot-starter-test</artifactId>
          <scope>test</scope>
        </dependency>
      </dependencies>
    </project>
"""
QUARKUS_POM = """
    <project>
      <modelVersion>4.0.0</modelVersion>
      <groupId>org.acme</groupId>
      <artifactId>greeting</artifactId>
      <version>1.0.0-SNAPSHOT</version>
      <properties>
        <quarkus.platform.group-id>io.quarkus.platform</quarkus.platform.group-id>
        <quarkus.platform.version>3.6.0</quarkus.platform.version>
      </properties>
      <dependencyManagement>
        <dependencies>
          <dependency>
            <groupId>${quarkus.platform.group-id}</groupId>
            <artifactId>quarkus-bom</artifactId>
            <version>${quarkus.platform.version}</version>
            <type>pom</type>
            <scope>import</scope>
          </dependency>
        </dependencies>
      </dependencyManagement>
      <dependencies>
        <dependency>
          <groupId>io.quarkus</groupId>
          <artifactId>quarkus-rest</artifactId>
        </dependency>
      </dependencies>
    </project>
"""


def test_maven_parent_properties_and_dependency_management(analyse) -> None:
    analysis = analyse({"pom.xml": ROOT_POM, "api/pom.xml": API_POM})

    assert deps(analysis, "maven") == {
        # the platform the parent names versions its own artifacts
        "org.springframework.boot:spring-boot-starter-web": (
            "3.2.0",
            "runtime",
            "api/pom.xml",
            True,
        ),
        "org.springframework.boot:spring-boot-starter-test": ("3.2.0", "test", "api/pom.xml", True),
        # managed in the parent, with the child's property winning
        "com.google.guava:guava": ("33.0.0-jre", "runtime", "api/pom.xml", True),
        "io.jsonwebtoken:jjwt-api": ("0.12.3", "runtime", "api/pom.xml", True),
        "com.example:common": ("1.4.0", "runtime", "api/pom.xml", True),
        # an undefined property stays as written
        "org.mapstruct:mapstruct": ("${mapstruct.version}", "runtime", "api/pom.xml", True),
    }
    root = manifest(analysis, "pom.xml")
    assert root["parent"] == "org.springframework.boot:spring-boot-starter-parent:3.2.0"
    assert root["modules"] == ["api"]
    assert root["packaging"] == "pom"
    api = manifest(analysis, "api/pom.xml")
    assert (api["group_id"], api["artifact_id"], api["version"]) == ("com.example", "api", "1.4.0")
    assert frameworks(analysis) == {("Spring Boot", "3.2.0")}
    assert tool_paths(analysis) == [{"name": "maven", "paths": ["api/pom.xml", "pom.xml"]}]


def test_maven_quarkus_bom_import(analyse) -> None:
    analysis = analyse({"pom.xml": QUARKUS_POM})

    assert deps(analysis) == {"io.quarkus:quarkus-rest": ("3.6.0", "runtime", "pom.xml", True)}
    assert frameworks(analysis) == {("Quarkus", "3.6.0")}


def test_malformed_pom_is_reported_and_others_still_count(analyse) -> None:
    analysis = analyse(
        {
            "pom.xml": ROOT_POM,
            "api/pom.xml": API_POM,
            "broken/pom.xml": "<project><dependencies><dependency></project>",
            "entity/pom.xml": '<!DOCTYPE x [<!ENTITY a "b">]><project/>',
        }
    )

    assert "invalid XML" in manifest(analysis, "broken/pom.xml")["error"]
    assert "DOCTYPE" in manifest(analysis, "entity/pom.xml")["error"]
    assert "com.google.guava:guava" in deps(analysis)


GROOVY_BUILD = """
    plugins {
        id 'java'
        id 'org.springframework.boot' version '3.1.5'
        id 'io.spring.dependency-management' version '1.1.3'
    }

    ext {
        jjwtVersion = '0.12.3'
    }

    repositories { maven { url 'https://repo.example.com/maven2' } } // not a comment inside

    dependencies {
        implementation 'org.springframework.boot:spring-boot-starter-web'
        implementation "io.jsonwebtoken:jjwt-api:${jjwtVersion}"
        implementation group: 'org.apache.commons', name: 'commons-lang3', version: '3.14.0'
        compileOnly 'org.projectlombok:lombok:1.18.30'
        annotationProcessor 'org.projectlombok:lombok:1.18.30'
        runtimeOnly 'org.postgresql:postgresql:42.7.0' // the driver
        // implementation 'commented.out:library:1.0'
        /* implementation 'block.commented:library:1.0' */
        testImplementation 'org.springframework.boot:spring-boot-starter-test'
        implementation project(':common')
    }
"""
KOTLIN_BUILD = """
    plugins {
        id("org.springframework.boot") version "3.2.0"
        kotlin("jvm") version "1.9.20"
        alias(libs.plugins.ktlint)
    }

    val mockkVersion = "1.13.8"

    dependencies {
        implementation("org.springframework.boot:spring-boot-starter-webflux")
        implementation(libs.jackson.kotlin)
        implementation(libs.bundles.logging)
        implementation(kotlin("reflect"))
        implementation(platform("software.amazon.awssdk:bom:2.21.0"))
        testImplementation(group = "io.mockk", name = "mockk", version = mockkVersion)
        testImplementation("io.mockk:mockk-agent:$mockkVersion")
    }
"""
CATALOG = """
    [versions]
    jackson = "2.16.0"
    slf4j = { strictly = "2.0.9" }

    [libraries]
    jackson-kotlin = { module = "com.fasterxml.jackson.module:jackson-module-kotlin", version.ref = "jackson" }
    slf4j-api = { group = "org.slf4j", name = "slf4j-api", version.ref = "slf4j" }
    logback = "ch.qos.logback:logback-classic:1.4.14"

    [bundles]
    logging = ["slf4j-api", "logback"]

    [plugins]
    ktlint = { id = "org.jlleitschuh.gradle.ktlint", version = "11.6.1" }
"""  # noqa: E501 - catalog lines are long


def test_gradle_groovy_dsl(analyse) -> None:
    analysis = analyse({"build.gradle": GROOVY_BUILD, "settings.gradle": "include 'common'\n"})

    assert deps(analysis) == {
        "org.springframework.boot:spring-boot-starter-web": (
            "3.1.5",
            "runtime",
            "build.gradle",
            True,
        ),
        "io.jsonwebtoken:jjwt-api": ("0.12.3", "runtime", "build.gradle", True),
        "org.apache.commons:commons-lang3": ("3.14.0", "runtime", "build.gradle", True),
        "org.projectlombok:lombok": ("1.18.30", "dev", "build.gradle", True),
        "org.postgresql:postgresql": ("42.7.0", "runtime", "build.gradle", True),
        "org.springframework.boot:spring-boot-starter-test": (
            "3.1.5",
            "test",
            "build.gradle",
            True,
        ),
    }
    assert manifest(analysis, "build.gradle")["plugins"] == {
        "java": None,
        "org.springframework.boot": "3.1.5",
        "io.spring.dependency-management": "1.1.3",
    }
    assert manifest(analysis, "settings.gradle")["modules"] == ["common"]
    assert frameworks(analysis) == {("Spring Boot", "3.1.5")}
    assert [t["name"] for t in analysis.build_tools] == ["gradle"]


def test_gradle_kotlin_dsl_with_version_catalog(analyse) -> None:
    analysis = analyse({"build.gradle.kts": KOTLIN_BUILD, "gradle/libs.versions.toml": CATALOG})

    found = {name: (v[0], v[1]) for name, v in deps(analysis).items()}
    assert found == {
        "org.springframework.boot:spring-boot-starter-webflux": ("3.2.0", "runtime"),
        "com.fasterxml.jackson.module:jackson-module-kotlin": ("2.16.0", "runtime"),
        "org.slf4j:slf4j-api": ("2.0.9", "runtime"),
        "ch.qos.logback:logback-classic": ("1.4.14", "runtime"),
        "org.jetbrains.kotlin:kotlin-reflect": (None, "runtime"),
        "software.amazon.awssdk:bom": ("2.21.0", "runtime"),
        "io.mockk:mockk": ("1.13.8", "test"),
        "io.mockk:mockk-agent": ("1.13.8", "test"),
    }
    plugins = manifest(analysis, "build.gradle.kts")["plugins"]
    assert plugins == {
        "org.springframework.boot": "3.2.0",
        "org.jetbrains.kotlin.jvm": "1.9.20",
        "org.jlleitschuh.gradle.ktlint": "11.6.1",
    }
    assert frameworks(analysis) == {("Spring Boot", "3.2.0")}


def test_gradle_quarkus_platform_from_gradle_properties(analyse) -> None:
    analysis = analyse(
        {
            "gradle.properties": """
                quarkusPlatformGroupId=io.quarkus.platform
                quarkusPlatformArtifactId=quarkus-bom
                quarkusPlatformVersion=3.6.0
            """,
            "service/build.gradle": """
                plugins {
                    id 'java'
                    id 'io.quarkus'
                }
                dependencies {
                    implementation enforcedPlatform("${quarkusPlatformGroupId}:${quarkusPlatformArtifactId}:${quarkusPlatformVersion}")
                    implementation 'io.quarkus:quarkus-resteasy-reactive'
                    testImplementation 'io.quarkus:quarkus-junit5'
                }
            """,  # noqa: E501 - as Quarkus generates it
        }
    )

    assert deps(analysis) == {
        "io.quarkus.platform:quarkus-bom": ("3.6.0", "runtime", "service/build.gradle", True),
        "io.quarkus:quarkus-resteasy-reactive": ("3.6.0", "runtime", "service/build.gradle", True),
        "io.quarkus:quarkus-junit5": ("3.6.0", "test", "service/build.gradle", True),
    }
    assert frameworks(analysis) == {("Quarkus", "3.6.0")}
