{% macro botpenguin_stage(table, conversation_type) %}
{#-
  One stream's raw table, typed and named for analysis: one row per conversation (the latest
  `updatedAt` wins when a target appended several), rows a target marked deleted left out,
  the profile's fields as columns and its arrays (tags, attributes, notes) as JSON.
-#}
{%- set relation = source('botpenguin', table) -%}
{%- set naming = botpenguin_naming(relation) -%}
{%- set user = botpenguin_key('userDetails', naming) -%}
{%- set profile = botpenguin_column('profile', naming) -%}
{%- set last_message = botpenguin_column('lastMessage', naming) -%}
with versions as (
    select
        *,
        row_number() over (
            partition by {{ botpenguin_column('_id', naming) }}
            order by {{ botpenguin_column('updatedAt', naming) }} desc nulls last
        ) as version_rank
    from {{ relation }}
),

latest as (
    select
        cast({{ botpenguin_column('_id', naming) }} as {{ dbt.type_string() }}) as conversation_id,
        '{{ conversation_type }}' as conversation_type,
        {{ botpenguin_column('botId', naming) }} as bot_id,
        {{ botpenguin_column('customerId', naming) }} as customer_id,
        {{ botpenguin_column('uuid', naming) }} as session_uuid,
        {{ botpenguin_column('status', naming) }} as status,
        {{ botpenguin_column('isOnline', naming) }} as is_online,
        {{ botpenguin_column('websiteVisits', naming) }} as website_visits,
        {{ botpenguin_column('_agentAssigned', naming) }} as agent_id,
        {{ botpenguin_json_text(profile, [user, 'name']) }} as contact_name,
        {{ botpenguin_json_text(profile, [user, 'contact', 'email']) }} as contact_email,
        {{ botpenguin_json_text(profile, [user, 'contact', 'phone', 'prefix']) }} as phone_prefix,
        {{ botpenguin_json_text(profile, [user, 'contact', 'phone', 'number']) }} as phone_number,
        {{ botpenguin_json_text(profile, [user, 'city']) }} as city,
        {{ botpenguin_json_text(profile, [user, 'country']) }} as country,
        {{ botpenguin_json_text(profile, [user, 'gender']) }} as gender,
        {{ botpenguin_json_get(profile, [user, 'tags']) }} as tags,
        {{ botpenguin_json_get(profile, [user, 'attributes']) }} as attributes,
        {{ botpenguin_json_get(profile, ['notes']) }} as notes,
        {{ botpenguin_parse_timestamp(botpenguin_json_text(last_message, ['at'])) }} as last_message_at,
        {{ botpenguin_json_text(last_message, ['by']) }} as last_message_by,
        {{ botpenguin_json_text(last_message, ['text']) }} as last_message_text,
        {{ botpenguin_timestamp(botpenguin_column('lastSeenAt', naming)) }} as last_seen_at,
        {{ botpenguin_timestamp(botpenguin_column('createdAt', naming)) }} as created_at,
        {{ botpenguin_timestamp(botpenguin_column('updatedAt', naming)) }} as updated_at
    from versions
    where version_rank = 1 and {{ botpenguin_deleted_at(relation) }} is null
)

select
    conversation_id,
    conversation_type,
    bot_id,
    customer_id,
    session_uuid,
    status,
    is_online,
    website_visits,
    agent_id,
    contact_name,
    contact_email,
    case
        when phone_number is null or phone_number = '' then null
        when phone_prefix is null or phone_prefix = '' then phone_number
        else '+' || phone_prefix || phone_number
    end as contact_phone,
    city,
    country,
    gender,
    tags,
    attributes,
    notes,
    last_message_at,
    last_message_by,
    last_message_text,
    last_seen_at,
    created_at,
    updated_at
from latest
{% endmacro %}
