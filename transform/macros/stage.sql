{% macro botpenguin_stage(table, conversation_type) %}
{#-
  One stream, from every schema the tap's shards load (`botpenguin_source_relations`): each
  staged on its own (each shard's table has the columns its own records brought), then
  stacked. With one schema, as before: that schema's table.
-#}
{%- set relations = botpenguin_source_relations(table) -%}
{%- if relations | length == 1 -%}
{{ botpenguin_stage_relation(relations[0], conversation_type) }}
{%- else -%}
{%- for relation in relations %}
select * from (
{{ botpenguin_stage_relation(relation, conversation_type) }}
) as {{ 'shard_' ~ loop.index }}
{% if not loop.last %}union all{% endif %}
{%- endfor %}
{%- endif -%}
{% endmacro %}


{% macro botpenguin_stage_relation(relation, conversation_type) %}
{#-
  One stream's raw table, typed and named for analysis: one row per conversation (the latest
  `updatedAt` wins when a target appended several), rows a target marked deleted left out,
  the profile's fields as columns and its arrays (tags, attributes, notes) as JSON.
  Records come as documented or as BotPenguin really sends them (docs/contract.md): the name
  in `userProvidedName`, the phone in `whatsAppNumber`, unknown values as empty strings (null
  here, in every text column), and top-level fields the field tables do not list, found
  wherever the tap's `undocumented_fields` mode put them (`botpenguin_undocumented`).
-#}

{%- set naming = botpenguin_naming(relation) -%}
{%- set columns = botpenguin_columns(relation) -%}
{%- set user = botpenguin_key('userDetails', naming) -%}
{%- set profile = botpenguin_column('profile', naming) -%}
{%- set last_message = botpenguin_column('lastMessage', naming) -%}
{%- set urls_visited = botpenguin_json_get(profile, [botpenguin_key('marketing', naming), botpenguin_key('urlsVisited', naming)]) -%}
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
        {{ botpenguin_blank_to_null(botpenguin_column('uuid', naming)) }} as session_uuid,
        {{ botpenguin_blank_to_null(botpenguin_column('status', naming)) }} as status,
        {{ botpenguin_column('isOnline', naming) }} as is_online,
        {{ botpenguin_column('websiteVisits', naming) }} as website_visits,
        {{ botpenguin_blank_to_null(botpenguin_column('_agentAssigned', naming)) }} as agent_id,
        {{ botpenguin_blank_to_null(botpenguin_json_text(profile, [user, 'name'])) }} as documented_name,
        {{ botpenguin_blank_to_null(botpenguin_json_text(profile, [user, botpenguin_key('userProvidedName', naming)])) }} as provided_name,
        {{ botpenguin_blank_to_null(botpenguin_json_text(profile, [user, 'contact', 'email'])) }} as contact_email,
        {{ botpenguin_blank_to_null(botpenguin_json_text(profile, [user, 'contact', 'phone', 'prefix'])) }} as phone_prefix,
        {{ botpenguin_blank_to_null(botpenguin_json_text(profile, [user, 'contact', 'phone', 'number'])) }} as phone_number,
        {{ botpenguin_blank_to_null(botpenguin_json_text(profile, [user, botpenguin_key('whatsAppNumber', naming)])) }} as whatsapp_number,
        {{ botpenguin_blank_to_null(botpenguin_json_text(profile, [user, 'city'])) }} as city,
        {{ botpenguin_blank_to_null(botpenguin_json_text(profile, [user, 'country'])) }} as country,
        {{ botpenguin_blank_to_null(botpenguin_json_text(profile, [user, 'gender'])) }} as gender,
        {{ botpenguin_json_get(profile, [user, 'tags']) }} as tags,
        {{ botpenguin_json_get(profile, [user, 'attributes']) }} as attributes,
        {{ botpenguin_json_get(profile, ['notes']) }} as notes,
        {{ botpenguin_parse_timestamp(botpenguin_json_text(last_message, ['at'])) }} as last_message_at,
        {{ botpenguin_blank_to_null(botpenguin_json_text(last_message, ['by'])) }} as last_message_by,
        {{ botpenguin_blank_to_null(botpenguin_json_text(last_message, ['text'])) }} as last_message_text,
        {{ botpenguin_timestamp(botpenguin_column('lastSeenAt', naming)) }} as last_seen_at,
        {{ botpenguin_timestamp(botpenguin_column('createdAt', naming)) }} as created_at,
        {{ botpenguin_timestamp(botpenguin_column('updatedAt', naming)) }} as updated_at,
        {{ botpenguin_undocumented(columns, 'platform', naming, 'json') }} as platform,
        {{ botpenguin_undocumented(columns, 'secondaryPlatform', naming, 'json') }} as secondary_platform,
        {{ botpenguin_undocumented(columns, 'isSubscriber', naming, 'boolean') }} as is_subscriber,
        {{ botpenguin_undocumented(columns, 'isContact', naming, 'boolean') }} as is_contact,
        {{ botpenguin_undocumented(columns, 'isImported', naming, 'boolean') }} as is_imported,
        {{ botpenguin_undocumented(columns, 'isPaid', naming, 'boolean') }} as is_paid,
        {{ botpenguin_undocumented(columns, 'hasOrdered', naming, 'json') }} as has_ordered_json,
        {{ botpenguin_undocumented(columns, 'isLiveChatActive', naming, 'boolean') }} as is_live_chat_active,
        {{ botpenguin_undocumented(columns, 'unreadMessages', naming, 'number') }} as unread_messages,
        {{ botpenguin_undocumented(columns, 'segments', naming, 'json') }} as segments,
        {{ botpenguin_blank_to_null(botpenguin_json_item_text(urls_visited, 'first')) }} as first_visited_url,
        {{ botpenguin_blank_to_null(botpenguin_json_item_text(urls_visited, 'last')) }} as last_visited_url
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
    -- The documented name and phone win; real records carry `userProvidedName` and
    -- `whatsAppNumber` (dial code and number) instead.
    coalesce(documented_name, provided_name) as contact_name,
    contact_email,
    case
        when phone_number is not null and phone_prefix is null then phone_number
        when phone_number is not null then '+' || phone_prefix || phone_number
        when whatsapp_number like '+%' then whatsapp_number
        when whatsapp_number is not null then '+' || whatsapp_number
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
    updated_at,
    platform,
    secondary_platform,
    is_subscriber,
    is_contact,
    is_imported,
    is_paid,
    -- `hasOrdered` is `{status: boolean}`; a bare boolean is taken as it is.
    coalesce(
        {{ botpenguin_text_to_boolean(botpenguin_json_text('has_ordered_json', ['status'])) }},
        {{ botpenguin_text_to_boolean(botpenguin_element_text('has_ordered_json')) }}
    ) as has_ordered,
    is_live_chat_active,
    cast(round(unread_messages) as {{ dbt.type_int() }}) as unread_messages,
    segments,
    first_visited_url,
    last_visited_url
from latest
{% endmacro %}
